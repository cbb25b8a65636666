"""Bearer authentication: every refusal is a 401 problem; tokens are shown once."""

from __future__ import annotations

import asyncio
import hmac
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from api import auth
from controlplane.db.base import utcnow
from controlplane.db.identity_tables import ApiToken, User
from controlplane.db.uow import UnitOfWork
from controlplane.identity import tokens
from controlplane.identity.cache import PrincipalCache
from controlplane.identity.roles import Role
from controlplane.identity.store import IdentityStore
from tests.api.conftest import World
from tests.secrets_scan import register_secret


def assert_401(resp: Any, code: str) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.json()["code"] == code


def test_missing_and_malformed(world: World) -> None:
    assert_401(world.client.get("/v1/clouds"), "auth.missing")
    assert_401(
        world.client.get("/v1/clouds", headers={"Authorization": "Basic abc"}), "auth.malformed"
    )
    assert_401(
        world.client.get("/v1/clouds", headers={"Authorization": "Bearer "}), "auth.malformed"
    )
    assert_401(
        world.client.get("/v1/clouds", headers={"Authorization": "Bearer ygt_short"}),
        "auth.malformed",
    )


def test_unknown_and_wrong_tokens_look_the_same(world: World) -> None:
    real = world.tokens["cs-member"]
    selector = tokens.selector_of(real)
    assert selector
    wrong_secret = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    unknown = f"ygt_{'f' * 16}_{'A' * 43}"
    a = world.client.get("/v1/clouds", headers={"Authorization": f"Bearer {wrong_secret}"})
    b = world.client.get("/v1/clouds", headers={"Authorization": f"Bearer {unknown}"})
    assert_401(a, "auth.invalid")
    assert_401(b, "auth.invalid")
    assert a.json()["detail"] == b.json()["detail"]


def test_unknown_and_wrong_tokens_do_the_same_work(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both paths compute one HMAC and one constant-time comparison (timing: bench/)."""
    calls: list[str] = []
    real_compare = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append("compare")
        return real_compare(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", counting)
    real = world.tokens["cs-member"]
    for bearer in (real[:-4] + "AAAA", f"ygt_{'f' * 16}_{'A' * 43}"):
        calls.clear()
        world.client.get("/v1/clouds", headers={"Authorization": f"Bearer {bearer}"})
        assert calls == ["compare"]


def test_expired_and_revoked(world: World) -> None:
    token = world.add_user("short-lived", None, "cs-data", "cs-data")
    assert (
        world.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    selector = tokens.selector_of(token)
    with UnitOfWork(world.container.session_factory) as uow:
        uow.session.execute(
            update(ApiToken)
            .where(ApiToken.selector == selector)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        uow.commit()
    assert_401(
        world.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}), "auth.expired"
    )

    issued = world.call("cs-member", "POST", "/v1/me/tokens", json={"name": "laptop"}).json()
    mine = register_secret(issued["token"])
    assert (
        world.client.get("/v1/me", headers={"Authorization": f"Bearer {mine}"}).status_code == 200
    )
    listed = world.call("cs-member", "GET", "/v1/me/tokens").json()
    assert all("token" not in t and "digest" not in t for t in listed)
    assert world.call("cs-member", "DELETE", f"/v1/me/tokens/{issued['id']}").status_code == 204
    assert_401(
        world.client.get("/v1/me", headers={"Authorization": f"Bearer {mine}"}), "auth.revoked"
    )


def test_tokens_are_stored_only_as_keyed_hashes(world: World) -> None:
    with UnitOfWork(world.container.session_factory) as uow:
        rows = uow.session.query(ApiToken).all()
        stored = {(r.selector, r.digest) for r in rows}
    for token in world.tokens.values():
        assert not any(token in d or d in token for _, d in stored)
        sel = tokens.selector_of(token)
        digest = next(d for s, d in stored if s == sel)
        assert digest == tokens.digest(world.container.settings.effective_secret_key, token)


def test_me(world: World) -> None:
    body = world.call("cs-admin", "GET", "/v1/me").json()
    assert body == {
        "login": "cs-admin",
        "via": "token",
        "roles": [{"role": "prefecture-admin", "scope": "changsha"}],
    }


def test_lifetime_bounds(world: World) -> None:
    resp = world.call(
        "cs-member", "POST", "/v1/me/tokens", json={"name": "x", "expires_in_days": 400}
    )
    assert resp.status_code == 422
    assert resp.json()["code"] == "request.invalid"


def test_a_cached_principal_is_refreshed_ahead_and_revocation_still_lands(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the principal cache on, a busy client's entry is refreshed in the
    background before it ends; a token revoked meanwhile is refused as soon as
    that refresh has run, within the cache's TTL."""
    monkeypatch.setattr(world.container, "principals", PrincipalCache(ttl=2.0))
    refreshed: list[str] = []
    real_refresh = auth._refresh

    async def counting(*args: Any) -> None:
        refreshed.append("refresh")
        await real_refresh(*args)

    monkeypatch.setattr(auth, "_refresh", counting)
    issued = world.call("cs-member", "POST", "/v1/me/tokens", json={"name": "busy"}).json()
    mine = register_secret(issued["token"])
    me = {"Authorization": f"Bearer {mine}"}
    assert world.client.get("/v1/me", headers=me).status_code == 200  # cached now
    assert world.call("cs-member", "DELETE", f"/v1/me/tokens/{issued['id']}").status_code == 204
    assert world.client.get("/v1/me", headers=me).status_code == 200  # the cache's answer
    assert not refreshed  # young entries are not refreshed
    time.sleep(1.6)  # 4/5 of the TTL: due now or within 0.15 s (its point lies in [1/2, 7/8])
    deadline = time.monotonic() + 5
    while world.client.get("/v1/me", headers=me).status_code == 200:
        assert time.monotonic() < deadline, "the revoked token was still accepted"
        time.sleep(0.02)
    assert_401(world.client.get("/v1/me", headers=me), "auth.revoked")


def test_at_most_two_refreshes_run_at_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries that came due together are refreshed two at a time: a request
    that finds both slots taken is answered from its (still valid) entry and
    leaves the refresh to a later request."""
    cache = PrincipalCache(ttl=60.0)
    monkeypatch.setattr(world.container, "principals", cache)
    logins = ["prov-admin", "cs-admin", "zz-admin", "cs-mgr", "zz-mgr", "cs-member"]
    for login in logins:  # fill the cache: lookups, nothing to refresh yet
        assert world.call(login, "GET", "/v1/me").status_code == 200
    running, most, started, done = [0], [0], [], set()
    # Every entry due at once, until refreshed (as a refresh's new entry is not).
    monkeypatch.setattr(cache, "due", lambda key: key not in done)

    async def slow(request: Any, container: Any, token: str, key: str) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        started.append(key)
        await asyncio.sleep(0.5)
        done.add(key)
        running[0] -= 1

    monkeypatch.setattr(auth, "_refresh", slow)
    for login in logins:
        assert world.call(login, "GET", "/v1/me").status_code == 200  # answered from cache
    assert len(started) == auth.REFRESH_SLOTS == 2 and most[0] == 2
    deadline = time.monotonic() + 10
    while len(done) < len(logins):  # later requests start the rest, two by two
        assert time.monotonic() < deadline, f"only {len(done)} refreshed"
        for login in logins:
            world.call(login, "GET", "/v1/me")
        time.sleep(0.05)
    assert most[0] == 2 and sorted(started) == sorted(done)  # each once


def _stamp(world: World, token: str, last_used: Any) -> None:
    with UnitOfWork(world.container.session_factory) as uow:
        uow.session.execute(
            update(ApiToken)
            .where(ApiToken.selector == tokens.selector_of(token))
            .values(last_used_at=last_used)
        )
        uow.commit()


def _last_used(world: World, token: str) -> Any:
    with UnitOfWork(world.container.session_factory) as uow:
        return uow.session.scalar(
            select(ApiToken.last_used_at).where(ApiToken.selector == tokens.selector_of(token))
        )


def test_a_deactivated_user_is_refused(world: World) -> None:
    token = world.add_user("leaver", Role.DEPARTMENT_MEMBER, "cs-data", "cs-data")
    me = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/v1/me", headers=me).status_code == 200
    with UnitOfWork(world.container.session_factory) as uow:
        uow.session.execute(update(User).where(User.login == "leaver").values(active=False))
        uow.commit()
    assert_401(world.client.get("/v1/me", headers=me), "auth.inactive")


def test_every_binding_and_none(world: World) -> None:
    """The principal carries each of the user's bindings; a user with none
    authenticates with none (and can do nothing)."""
    bare = world.add_user("no-roles", None, "cs-data", "cs-data")
    body = world.client.get("/v1/me", headers={"Authorization": f"Bearer {bare}"}).json()
    assert body["roles"] == []
    token = world.add_user("two-hats", Role.DEPARTMENT_MEMBER, "cs-data", "cs-data")
    with UnitOfWork(world.container.session_factory) as uow:
        store = IdentityStore(uow.session)
        store.bind(store.user("two-hats"), Role.AUDITOR, "changsha")
        uow.commit()
    body = world.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert sorted((r["role"], r["scope"]) for r in body["roles"]) == [
        ("auditor", "changsha"),
        ("department-member", "cs-data"),
    ]


def test_last_used_is_stamped_at_most_once_a_minute(world: World) -> None:
    token = world.tokens["cs-member"]
    me = {"Authorization": f"Bearer {token}"}
    _stamp(world, token, None)
    before = utcnow()
    assert world.client.get("/v1/me", headers=me).status_code == 200
    stamped = _last_used(world, token)
    assert stamped is not None and stamped >= before - timedelta(seconds=1)
    recent = utcnow() - timedelta(seconds=30)
    _stamp(world, token, recent)
    assert world.client.get("/v1/me", headers=me).status_code == 200
    assert _last_used(world, token) == recent  # within the minute: no write
    stale = utcnow() - timedelta(minutes=2)
    _stamp(world, token, stale)
    assert world.client.get("/v1/me", headers=me).status_code == 200
    assert _last_used(world, token) > stale
