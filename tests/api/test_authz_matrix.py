"""Every /v1 route × every role × (own scope, foreign scope): the expected status.

Side A is 长沙市 / cs-data, side B is 株洲市 / zz-data; "own" targets A and
"foreign" targets B, always from the point of view of the A-side users (and the
province-wide ones, for whom both are their own). The table is the spec: a new
route fails `test_every_route_is_in_the_matrix` until its row is written.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from controlplane.db.uow import UnitOfWork
from controlplane.identity.roles import Role
from controlplane.identity.store import IdentityStore
from tests.api.conftest import World

SIDE = {"own": ("changsha", "cs-data"), "foreign": ("zhuzhou", "zz-data")}
ROLES = [
    "prov-admin",
    "cs-admin",
    "cs-mgr",
    "cs-member",
    "cs-ops",
    "prov-auditor",
    "cs-auditor",
    "nobody",
]


@dataclass(frozen=True)
class Req:
    method: str
    url: str
    json: Any = None


def _target_user(w: World, side: str, with_binding: bool = False) -> tuple[str, int | None]:
    login = f"t-{uuid.uuid4().hex[:8]}"
    dept = SIDE[side][1]
    with UnitOfWork(w.container.session_factory) as uow:
        store = IdentityStore(uow.session)
        user = store.create_user(login, login, dept)
        binding_id = None
        if with_binding:
            binding_id = store.bind(user, Role.DEPARTMENT_MEMBER, dept).id
        uow.commit()
    return login, binding_id


def _token_of(w: World, login: str) -> int:
    with UnitOfWork(w.container.session_factory) as uow:
        store = IdentityStore(uow.session)
        issued = store.issue_token(
            w.container.settings.effective_secret_key, store.user(login), "x", 1
        )
        uow.commit()
    return issued.id


def _bind(w: World, side: str) -> Req:
    login, _ = _target_user(w, side)
    return Req(
        "POST",
        f"/v1/users/{login}/bindings",
        {"role": "department-manager", "scope": SIDE[side][1]},
    )


def _unbind(w: World, side: str) -> Req:
    login, binding_id = _target_user(w, side, with_binding=True)
    return Req("DELETE", f"/v1/users/{login}/bindings/{binding_id}")


def _revoke_user_token(w: World, side: str) -> Req:
    login, _ = _target_user(w, side)
    return Req("DELETE", f"/v1/users/{login}/tokens/{_token_of(w, login)}")


def _new_user(_w: World, side: str) -> Req:
    return Req(
        "POST",
        "/v1/users",
        {"login": f"n-{uuid.uuid4().hex[:8]}", "display_name": "n", "home_scope": SIDE[side][1]},
    )


Build = Callable[[World, str], Req]
ALL = set(ROLES) - {"nobody"}
ADMINS = {"prov-admin", "cs-admin"}
USER_READERS = {"prov-admin", "cs-admin", "cs-mgr"}
PROVINCE_WIDE = {"prov-admin", "prov-auditor"}


def scoped(readers: set[str], ok: int = 200) -> Callable[[str, str], int]:
    """Readers see their own side (and province-wide roles both); others are refused."""

    def expect(role: str, side: str) -> int:
        if role not in readers:
            return 403
        if side == "foreign" and role not in PROVINCE_WIDE:
            return 404
        return ok

    return expect


def anyone(ok: int = 200, with_role_only: bool = False) -> Callable[[str, str], int]:
    def expect(role: str, _side: str) -> int:
        return 403 if with_role_only and role == "nobody" else ok

    return expect


# (method, OpenAPI path) -> (request builder, expected status for (role, side))
MATRIX: dict[tuple[str, str], tuple[Build, Callable[[str, str], int]]] = {
    ("GET", "/v1/clouds"): (lambda w, s: Req("GET", "/v1/clouds"), anyone(with_role_only=True)),
    ("GET", "/v1/clouds/{code}"): (
        lambda w, s: Req("GET", f"/v1/clouds/{SIDE[s][0]}"),
        scoped(ALL),
    ),
    ("GET", "/v1/org"): (lambda w, s: Req("GET", "/v1/org"), anyone(with_role_only=True)),
    ("GET", "/v1/org/{code}"): (lambda w, s: Req("GET", f"/v1/org/{SIDE[s][1]}"), scoped(ALL)),
    ("GET", "/v1/me"): (lambda w, s: Req("GET", "/v1/me"), anyone()),
    ("GET", "/v1/me/tokens"): (lambda w, s: Req("GET", "/v1/me/tokens"), anyone()),
    ("POST", "/v1/me/tokens"): (
        lambda w, s: Req("POST", "/v1/me/tokens", {"name": "mine", "expires_in_days": 1}),
        anyone(201),
    ),
    ("DELETE", "/v1/me/tokens/{token_id}"): (
        lambda w, s: Req("DELETE", "/v1/me/tokens/999999"),
        anyone(404),
    ),
    ("GET", "/v1/users"): (lambda w, s: Req("GET", "/v1/users"), scoped(USER_READERS)),
    ("GET", "/v1/users/{login}"): (
        lambda w, s: Req("GET", f"/v1/users/{_target_user(w, s)[0]}"),
        scoped(USER_READERS),
    ),
    ("POST", "/v1/users"): (_new_user, scoped(ADMINS, 201)),
    ("POST", "/v1/users/{login}/bindings"): (_bind, scoped(ADMINS, 201)),
    ("DELETE", "/v1/users/{login}/bindings/{binding_id}"): (_unbind, scoped(ADMINS)),
    ("GET", "/v1/users/{login}/tokens"): (
        lambda w, s: Req("GET", f"/v1/users/{_target_user(w, s)[0]}/tokens"),
        scoped(ADMINS),
    ),
    ("POST", "/v1/users/{login}/tokens"): (
        lambda w, s: Req("POST", f"/v1/users/{_target_user(w, s)[0]}/tokens", {"name": "x"}),
        scoped(ADMINS, 201),
    ),
    ("DELETE", "/v1/users/{login}/tokens/{token_id}"): (_revoke_user_token, scoped(ADMINS, 204)),
    ("GET", "/v1/audit"): (
        lambda w, s: Req("GET", "/v1/audit"),
        lambda role, side: 200 if role in {"prov-admin", "prov-auditor", "cs-auditor"} else 403,
    ),
}

# GET /v1/users is a list: "foreign" means nothing for it, so it answers 200 to readers.
_LISTS = {("GET", "/v1/users")}


def test_every_route_declares_a_permission(world: World) -> None:
    doc = world.client.get("/openapi.json").json()
    missing = [
        f"{method.upper()} {path}"
        for path, ops in doc["paths"].items()
        if path.startswith("/v1/")
        for method, op in ops.items()
        if "x-permission" not in op
    ]
    assert missing == []


def test_every_route_is_in_the_matrix(world: World) -> None:
    doc = world.client.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        if path.startswith("/v1/")
        for method in ops
    }
    assert routes == set(MATRIX)


@pytest.mark.parametrize(("route"), sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_by_role_and_scope(world: World, route: tuple[str, str]) -> None:
    build, expect = MATRIX[route]
    failures = []
    for role, side in itertools.product(ROLES, ("own", "foreign")):
        req = build(world, side)
        resp = world.call(role, req.method, req.url, json=req.json)
        want = expect(role, side)
        if route in _LISTS and want == 404:
            want = 200
        if resp.status_code != want:
            failures.append(f"{role} {side} {req.method} {req.url}: {resp.status_code} != {want}")
        if resp.status_code >= 400:
            assert resp.headers["content-type"] == "application/problem+json"
    assert failures == []


def test_member_lists_never_show_the_other_department(world: World) -> None:
    clouds = {c["code"] for c in world.call("cs-member", "GET", "/v1/clouds").json()["items"]}
    assert "changsha" in clouds and "provincial" in clouds
    assert "zhuzhou" not in clouds
    tree = world.call("cs-member", "GET", "/v1/org").json()
    flat = []
    stack = [tree]
    while stack:
        node = stack.pop()
        flat.append(node["code"])
        stack.extend(node["children"])
    assert "cs-data-portal" in flat and "hunan" in flat and "changsha" in flat
    assert not {"zhuzhou", "zz-data", "zz-data-portal", "cs-health", "hn-health"} & set(flat)
    users = {u["login"] for u in world.call("cs-mgr", "GET", "/v1/users").json()}
    assert "cs-member" in users and "zz-member" not in users and "cs-admin" not in users


def test_prefecture_admin_cannot_escalate(world: World) -> None:
    resp = world.call(
        "cs-admin",
        "POST",
        "/v1/users/cs-member/bindings",
        json={"role": "province-admin", "scope": "hunan"},
    )
    assert resp.status_code == 403
    resp = world.call(
        "cs-admin",
        "POST",
        "/v1/users/cs-member/bindings",
        json={"role": "department-manager", "scope": "changsha"},
    )
    assert resp.status_code == 422
    assert resp.json()["code"] == "binding.invalid_scope"
