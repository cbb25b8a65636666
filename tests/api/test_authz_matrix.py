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
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.identity.roles import Role
from controlplane.identity.store import IdentityStore
from controlplane.ledgerstore.objects import get_room
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.worker import operations as ops
from quotas import service
from quotas.model import Actor
from tests.api.conftest import World
from tests.api.ledger_fixtures import new_asset, new_room, new_system, new_wave, unique

ADMIN = Actor("matrix-setup")
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
    content: bytes | None = None


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


QUOTA_SIDE = {
    "own": ("changsha", "cs-data", "cs-data-portal"),
    "foreign": ("zhuzhou", "zz-data", "zz-data-portal"),
}


def _quota_world(w: World) -> None:
    """Capacity and grants on both prefecture clouds, once per world."""
    if getattr(w, "quota_ready", False):
        return
    with UnitOfWork(w.container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        for cloud, dept, project in QUOTA_SIDE.values():
            service.set_capacity(store, ADMIN, cloud, "vcpu", 100_000)
            service.set_grant(store, ADMIN, dept, cloud, "vcpu", 10_000)
            service.set_grant(store, ADMIN, project, cloud, "vcpu", 10)
        uow.commit()
    w.quota_ready = True  # type: ignore[attr-defined]


def _pending_request(w: World, side: str) -> int:
    _quota_world(w)
    cloud, _dept, project = QUOTA_SIDE[side]
    with UnitOfWork(w.container.session_factory) as uow:
        result = service.file_request(
            SqlQuotaStore(uow.session),
            ADMIN,
            project,
            service.parse_items([{"resource_class": "vcpu", "delta": 1}]),
            reason="matrix",
            cloud_code=cloud,
        )
        uow.commit()
    return result.request.id


def _reservation(w: World, side: str) -> int:
    _quota_world(w)
    cloud, _dept, project = QUOTA_SIDE[side]
    with UnitOfWork(w.container.session_factory) as uow:
        result = service.reserve(
            SqlQuotaStore(uow.session), ADMIN, project, cloud, {"vcpu": 1}, ttl=timedelta(minutes=5)
        )
        uow.commit()
    return result.reservation.id


def _operation(w: World, side: str, failed: bool = False) -> int:
    cloud, _dept, project = QUOTA_SIDE[side]
    with UnitOfWork(w.container.session_factory) as uow:
        s = uow.session
        cloud_id = s.scalar(select(Cloud.id).where(Cloud.code == cloud))
        node = s.scalar(select(OrgNode).where(OrgNode.code == project))
        assert cloud_id is not None and node is not None
        op = ops.create(
            s,
            kind=ops.OpKind.PROVISION,
            cloud_id=cloud_id,
            node_id=node.id,
            scope_path=node.path,
            generation=1,
            reason="event",
        )
        if failed:
            op.status = ops.OpStatus.FAILED.value
        uow.commit()
        return op.id


def _q(method: str, url: Callable[[World, str], str], body: Any = None) -> Build:
    def build(w: World, side: str) -> Req:
        _quota_world(w)
        return Req(method, url(w, side), body)

    return build


Build = Callable[[World, str], Req]
ALL = set(ROLES) - {"nobody"}
QUOTA_READERS = {"prov-admin", "cs-admin", "cs-mgr", "cs-member", "cs-ops"}
FILERS = {"prov-admin", "cs-admin", "cs-mgr", "cs-member"}
APPROVERS = {"prov-admin", "cs-admin", "cs-mgr"}
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
    ("GET", "/v1/pools"): (_q("GET", lambda w, s: "/v1/pools"), scoped(QUOTA_READERS)),
    ("PUT", "/v1/pools/{cloud}/{resource_class}"): (
        _q("PUT", lambda w, s: f"/v1/pools/{QUOTA_SIDE[s][0]}/vcpu", {"total": 100_000}),
        scoped(ADMINS),
    ),
    ("GET", "/v1/grants"): (
        _q("GET", lambda w, s: f"/v1/grants?cloud={QUOTA_SIDE[s][0]}"),
        scoped(QUOTA_READERS),
    ),
    ("PUT", "/v1/grants/{cloud}/{node}/{resource_class}"): (
        _q(
            "PUT",
            lambda w, s: f"/v1/grants/{QUOTA_SIDE[s][0]}/{QUOTA_SIDE[s][2]}/vcpu",
            {"amount": 10},
        ),
        scoped(ADMINS),
    ),
    ("POST", "/v1/requests"): (
        lambda w, s: (
            _quota_world(w),
            Req(
                "POST",
                "/v1/requests",
                {
                    "project": QUOTA_SIDE[s][2],
                    "cloud": QUOTA_SIDE[s][0],
                    "reason": "matrix",
                    "items": [{"resource_class": "vcpu", "delta": 1}],
                },
            ),
        )[1],
        scoped(FILERS, 201),
    ),
    ("GET", "/v1/requests"): (_q("GET", lambda w, s: "/v1/requests"), scoped(FILERS)),
    ("GET", "/v1/requests/{request_id}"): (
        lambda w, s: Req("GET", f"/v1/requests/{_pending_request(w, s)}"),
        scoped(FILERS),
    ),
    ("POST", "/v1/requests/{request_id}/approve"): (
        lambda w, s: Req("POST", f"/v1/requests/{_pending_request(w, s)}/approve", {}),
        scoped(APPROVERS),
    ),
    ("POST", "/v1/requests/{request_id}/reject"): (
        lambda w, s: Req("POST", f"/v1/requests/{_pending_request(w, s)}/reject", {}),
        scoped(APPROVERS),
    ),
    ("POST", "/v1/requests/{request_id}/cancel"): (
        lambda w, s: Req("POST", f"/v1/requests/{_pending_request(w, s)}/cancel"),
        scoped(FILERS),
    ),
    ("POST", "/v1/reservations"): (
        lambda w, s: (
            _quota_world(w),
            Req(
                "POST",
                "/v1/reservations",
                {"project": QUOTA_SIDE[s][2], "cloud": QUOTA_SIDE[s][0], "amounts": {"vcpu": 1}},
            ),
        )[1],
        scoped(ADMINS, 201),
    ),
    ("GET", "/v1/reservations"): (_q("GET", lambda w, s: "/v1/reservations"), scoped(ADMINS)),
    ("POST", "/v1/reservations/{reservation_id}/commit"): (
        lambda w, s: Req("POST", f"/v1/reservations/{_reservation(w, s)}/commit"),
        scoped(ADMINS),
    ),
    ("POST", "/v1/reservations/{reservation_id}/release"): (
        lambda w, s: Req("POST", f"/v1/reservations/{_reservation(w, s)}/release"),
        scoped(ADMINS),
    ),
    ("PUT", "/v1/auto-approval/{scope}"): (
        lambda w, s: Req("PUT", f"/v1/auto-approval/{QUOTA_SIDE[s][0]}", {"limits": {"vcpu": 4}}),
        scoped(ADMINS),
    ),
    ("GET", "/v1/operations"): (lambda w, s: Req("GET", "/v1/operations"), scoped(QUOTA_READERS)),
    ("GET", "/v1/operations/{op_id}"): (
        lambda w, s: Req("GET", f"/v1/operations/{_operation(w, s)}"),
        scoped(QUOTA_READERS),
    ),
    ("POST", "/v1/operations/{op_id}/retry"): (
        lambda w, s: Req("POST", f"/v1/operations/{_operation(w, s, failed=True)}/retry"),
        scoped(ADMINS),
    ),
    ("GET", "/v1/audit"): (
        lambda w, s: Req("GET", "/v1/audit"),
        lambda role, side: 200 if role in {"prov-admin", "prov-auditor", "cs-auditor"} else 403,
    ),
}

# -- the migration ledger (上云台账) --------------------------------------------
LEDGER_READERS = {"prov-admin", "cs-admin", "cs-mgr", "cs-member", "cs-ops"}
LEDGER_WRITERS = {"prov-admin", "cs-admin", "cs-mgr"}
_M = "/v1/migration"


def _ledger_import_expect(role: str, side: str) -> int:
    """Rows naming a department outside the caller's scopes are problems of the
    import (422 with the report), not a 404 of the route."""
    if role not in LEDGER_WRITERS:
        return 403
    return 422 if side == "foreign" and role not in PROVINCE_WIDE else 200


def _ledger_import(w: World, side: str) -> Req:
    return Req(
        "POST",
        f"{_M}/import?filename=rooms.csv",
        content=f"所属部门,机房名称\n{SIDE[side][1]},{unique('机房')}\n".encode(),
    )


MATRIX.update(
    {
        ("GET", f"{_M}/systems"): (
            lambda w, s: Req("GET", f"{_M}/systems"),
            scoped(LEDGER_READERS),
        ),
        ("POST", f"{_M}/systems"): (
            lambda w, s: Req(
                "POST",
                f"{_M}/systems",
                {"department": SIDE[s][1], "name": unique("系统"), "mlps_level": 3},
            ),
            scoped(LEDGER_WRITERS, 201),
        ),
        ("GET", f"{_M}/systems/{{system_id}}"): (
            lambda w, s: Req("GET", f"{_M}/systems/{new_system(w, SIDE[s][1])}"),
            scoped(LEDGER_READERS),
        ),
        ("PATCH", f"{_M}/systems/{{system_id}}"): (
            lambda w, s: Req("PATCH", f"{_M}/systems/{new_system(w, SIDE[s][1])}", {"notes": "x"}),
            scoped(LEDGER_WRITERS),
        ),
        ("DELETE", f"{_M}/systems/{{system_id}}"): (
            lambda w, s: Req("DELETE", f"{_M}/systems/{new_system(w, SIDE[s][1])}"),
            scoped(LEDGER_WRITERS, 204),
        ),
        ("POST", f"{_M}/systems/{{system_id}}/transitions"): (
            lambda w, s: Req(
                "POST", f"{_M}/systems/{new_system(w, SIDE[s][1])}/transitions", {"to": "assessed"}
            ),
            scoped(LEDGER_WRITERS, 201),
        ),
        ("GET", f"{_M}/rooms"): (lambda w, s: Req("GET", f"{_M}/rooms"), scoped(LEDGER_READERS)),
        ("POST", f"{_M}/rooms"): (
            lambda w, s: Req(
                "POST", f"{_M}/rooms", {"department": SIDE[s][1], "name": unique("机房")}
            ),
            scoped(LEDGER_WRITERS, 201),
        ),
        ("GET", f"{_M}/rooms/{{room_id}}"): (
            lambda w, s: Req("GET", f"{_M}/rooms/{new_room(w, SIDE[s][1])}"),
            scoped(LEDGER_READERS),
        ),
        ("PATCH", f"{_M}/rooms/{{room_id}}"): (
            lambda w, s: Req("PATCH", f"{_M}/rooms/{new_room(w, SIDE[s][1])}", {"address": "x"}),
            scoped(LEDGER_WRITERS),
        ),
        ("DELETE", f"{_M}/rooms/{{room_id}}"): (
            lambda w, s: Req("DELETE", f"{_M}/rooms/{new_room(w, SIDE[s][1])}"),
            scoped(LEDGER_WRITERS, 204),
        ),
        ("GET", f"{_M}/rooms/{{room_id}}/retirement"): (
            lambda w, s: Req("GET", f"{_M}/rooms/{new_room(w, SIDE[s][1])}/retirement"),
            scoped(LEDGER_READERS),
        ),
        ("POST", f"{_M}/rooms/{{room_id}}/status"): (
            lambda w, s: Req(
                "POST", f"{_M}/rooms/{new_room(w, SIDE[s][1])}/status", {"status": "consolidating"}
            ),
            scoped(LEDGER_WRITERS),
        ),
        ("GET", f"{_M}/assets"): (lambda w, s: Req("GET", f"{_M}/assets"), scoped(LEDGER_READERS)),
        ("POST", f"{_M}/assets"): (
            lambda w, s: Req(
                "POST",
                f"{_M}/assets",
                {
                    "serial": unique("SN"),
                    "department": SIDE[s][1],
                    "room": _room_name(w, SIDE[s][1]),
                    "kind": "server",
                },
            ),
            scoped(LEDGER_WRITERS, 201),
        ),
        ("GET", f"{_M}/assets/{{asset_id}}"): (
            lambda w, s: Req("GET", f"{_M}/assets/{new_asset(w, SIDE[s][1])}"),
            scoped(LEDGER_READERS),
        ),
        ("PATCH", f"{_M}/assets/{{asset_id}}"): (
            lambda w, s: Req(
                "PATCH", f"{_M}/assets/{new_asset(w, SIDE[s][1])}", {"status": "idle"}
            ),
            scoped(LEDGER_WRITERS),
        ),
        ("DELETE", f"{_M}/assets/{{asset_id}}"): (
            lambda w, s: Req("DELETE", f"{_M}/assets/{new_asset(w, SIDE[s][1])}"),
            scoped(LEDGER_WRITERS, 204),
        ),
        ("GET", f"{_M}/waves"): (lambda w, s: Req("GET", f"{_M}/waves"), scoped(LEDGER_READERS)),
        ("POST", f"{_M}/waves"): (
            lambda w, s: Req(
                "POST",
                f"{_M}/waves",
                {
                    "code": unique("w"),
                    "name": "第一批",
                    "scope": SIDE[s][1],
                    "starts_on": "2026-01-01",
                    "ends_on": "2026-03-31",
                },
            ),
            scoped(LEDGER_WRITERS, 201),
        ),
        ("GET", f"{_M}/waves/{{code}}"): (
            lambda w, s: Req("GET", f"{_M}/waves/{new_wave(w, SIDE[s][1])}"),
            scoped(LEDGER_READERS),
        ),
        ("PATCH", f"{_M}/waves/{{code}}"): (
            lambda w, s: Req("PATCH", f"{_M}/waves/{new_wave(w, SIDE[s][1])}", {"name": "改名"}),
            scoped(LEDGER_WRITERS),
        ),
        ("DELETE", f"{_M}/waves/{{code}}"): (
            lambda w, s: Req("DELETE", f"{_M}/waves/{new_wave(w, SIDE[s][1])}"),
            scoped(LEDGER_WRITERS, 204),
        ),
        ("GET", f"{_M}/progress"): (
            lambda w, s: Req("GET", f"{_M}/progress?prefecture={SIDE[s][0]}"),
            scoped(LEDGER_READERS),
        ),
        ("POST", f"{_M}/import"): (_ledger_import, _ledger_import_expect),
        ("GET", f"{_M}/export"): (
            lambda w, s: Req("GET", f"{_M}/export?format=csv&kind=systems"),
            scoped(LEDGER_READERS),
        ),
    }
)


def _room_name(w: World, dept: str) -> str:
    with UnitOfWork(w.container.session_factory) as uow:
        return get_room(uow.session, new_room(w, dept), None)[1]["name"]


# GET /v1/users is a list: "foreign" means nothing for it, so it answers 200 to readers.
_LISTS = {
    ("GET", "/v1/users"),
    ("GET", "/v1/pools"),
    ("GET", "/v1/requests"),
    ("GET", "/v1/reservations"),
    ("GET", "/v1/operations"),
}
_LISTS |= {("GET", f"{_M}/{kind}") for kind in ("systems", "rooms", "assets", "waves", "export")}


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
        resp = world.call(role, req.method, req.url, json=req.json, content=req.content)
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
