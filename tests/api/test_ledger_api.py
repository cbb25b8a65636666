"""The migration ledger over HTTP: scoping, the state machine, import and export."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from controlplane.db.uow import UnitOfWork
from controlplane.ledgerstore.inventory import ObservedItem, replace_cloud_inventory
from tests.api.conftest import World
from tests.ledger.conftest import ROOMS, csv_bytes, seed_workbook

M = "/v1/migration"


def _seed(world: World) -> None:
    resp = world.call(
        "prov-admin",
        "POST",
        f"{M}/import",
        files={"file": ("台账.xlsx", seed_workbook(), "application/octet-stream")},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["counts"]["create"] == 16


def _names(resp: object) -> set[str]:
    return {s["name"] for s in resp.json()["items"]}  # type: ignore[attr-defined]


def test_a_member_never_sees_another_departments_systems(world: World) -> None:
    _seed(world)
    everything = world.call("prov-admin", "GET", f"{M}/systems")
    assert everything.json()["total"] == 7
    zz = next(s for s in everything.json()["items"] if s["department"] == "zz-data")
    mine = world.call("cs-member", "GET", f"{M}/systems?limit=2")
    assert mine.json()["total"] == 3 and len(mine.json()["items"]) == 2  # paged after filtering
    assert {s["department"] for s in mine.json()["items"]} == {"cs-data"}
    assert _names(world.call("cs-member", "GET", f"{M}/systems?offset=2")) <= {
        "长沙市政务服务网",
        "长沙市公文交换",
        "长沙市办公平台",
    }
    assert world.call("cs-member", "GET", f"{M}/systems/{zz['id']}").status_code == 404
    assert world.call("zz-member", "GET", f"{M}/systems/{zz['id']}").status_code == 200
    assert _names(world.call("cs-ops", "GET", f"{M}/systems")) == {
        "长沙市政务服务网",
        "长沙市公文交换",
        "长沙市办公平台",
    }
    assert world.call("cs-member", "GET", f"{M}/systems?prefecture=zhuzhou").status_code == 404
    assets = world.call("cs-member", "GET", f"{M}/assets").json()
    assert {a["department"] for a in assets["items"]} == {"cs-data"}
    export = world.call("cs-member", "GET", f"{M}/export?format=csv&kind=systems")
    assert export.status_code == 200 and "株洲" not in export.content.decode("utf-8-sig")
    assert "长沙市政务服务网" in export.content.decode("utf-8-sig")
    progress = world.call("cs-member", "GET", f"{M}/progress").json()
    assert progress["scope"] == "cs-data"
    assert [d["scope"] for d in progress["by_department"]] == ["cs-data"]
    assert progress["total"]["in_scope"] == 2 and progress["total"]["classified"] == 1
    # a write outside one's scope is a 404; a readable-only object a 403
    patch = world.call("cs-mgr", "PATCH", f"{M}/systems/{zz['id']}", json={"notes": "x"})
    assert patch.status_code == 404
    assert world.call("cs-member", "PATCH", f"{M}/systems/{zz['id']}", json={}).status_code == 403


def test_crud_and_transitions_over_http(world: World) -> None:
    _seed(world)
    created = world.call(
        "cs-mgr",
        "POST",
        f"{M}/systems",
        json={
            "department": "长沙市数据资源管理局",
            "name": "长沙市不动产登记",
            "mlps_level": 3,
            "location": "长沙数据局机房",
            "target_cloud": "changsha",
            "projects": ["cs-data-portal"],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["department"] == "cs-data" and body["room"] == "长沙数据局机房"
    assert body["state"] == "inventoried" and body["projects"] == ["cs-data-portal"]
    again = world.call(
        "cs-mgr",
        "POST",
        f"{M}/systems",
        json={"department": "cs-data", "name": "长沙市不动产登记", "mlps_level": 3},
    )
    assert again.status_code == 409 and again.json()["code"] == "migration.exists"
    gate = world.call(
        "cs-mgr",
        "POST",
        f"{M}/systems",
        json={"department": "cs-data", "name": "新系统", "mlps_level": 2, "origin": "new"},
    )
    assert gate.status_code == 422 and gate.json()["code"] == "migration.invalid"
    assert "exemption approval" in gate.json()["errors"][0]["message"]
    url = f"{M}/systems/{body['id']}"
    bad = world.call(
        "cs-mgr", "PATCH", url, json={"target_cloud": "xinchuang", "architecture": "x86_64"}
    )
    assert bad.status_code == 422 and "requires x86_64" in bad.json()["detail"]

    def go(login: str, **payload: object) -> object:
        return world.call(login, "POST", f"{url}/transitions", json=payload)

    illegal = go("cs-mgr", to="migrating")
    assert illegal.status_code == 409  # type: ignore[attr-defined]
    problem = illegal.json()  # type: ignore[attr-defined]
    assert problem["code"] == "migration.illegal_transition"
    assert problem["from"] == "inventoried" and problem["to"] == "migrating"
    assert go("cs-mgr", to="assessed").status_code == 201  # type: ignore[attr-defined]
    assert go("cs-mgr", to="planned", wave="cs-2026-1").status_code == 201  # type: ignore[attr-defined]
    assert go("cs-mgr", to="migrating").status_code == 201  # type: ignore[attr-defined]
    assert go("cs-mgr", to="cut-over").status_code == 201  # type: ignore[attr-defined]
    refused = go("cs-mgr", to="accepted")
    assert refused.status_code == 409  # type: ignore[attr-defined]
    assert refused.json()["code"] == "migration.acceptance_unverified"  # type: ignore[attr-defined]
    forbidden = go("cs-mgr", to="accepted", override=True, reason="现场核验")
    assert forbidden.json()["code"] == "migration.override_forbidden"  # type: ignore[attr-defined]
    with UnitOfWork(world.container.session_factory) as uow:
        item = ObservedItem("server", "vm-1", "bdc-web", "cs-data-portal", "ACTIVE", True, "x86_64")
        replace_cloud_inventory(uow.session, "changsha", [item], datetime.now(UTC))
        uow.commit()
    accepted = go("cs-mgr", to="accepted")
    assert accepted.status_code == 201  # type: ignore[attr-defined]
    assert accepted.json()["evidence"]["items"][0]["name"] == "bdc-web"  # type: ignore[attr-defined]
    detail = world.call("cs-member", "GET", url).json()
    assert [h["to"] for h in detail["history"]] == [
        "assessed", "planned", "migrating", "cut-over", "accepted",
    ]  # fmt: skip
    assert detail["wave"] == "cs-2026-1" and detail["state"] == "accepted"
    gone = world.call("cs-mgr", "DELETE", url)
    assert gone.status_code == 409 and gone.json()["code"] == "migration.in_progress"
    audit = world.call("prov-auditor", "GET", "/v1/audit?object_type=migration_system").json()
    assert [e["action"] for e in audit["items"]][:2] == [
        "migration.system.create",
        "migration.system.transition",
    ]


def test_admin_override_and_room_retirement_over_http(world: World) -> None:
    _seed(world)
    systems = world.call("prov-admin", "GET", f"{M}/systems?prefecture=zhuzhou").json()["items"]
    url = f"{M}/systems/{systems[0]['id']}/transitions"
    for state in ("assessed", "planned", "migrating", "cut-over"):
        wave = "zz" if state == "planned" else None
        if wave:
            world.call(
                "zz-admin",
                "POST",
                f"{M}/waves",
                json={"code": "zz", "name": "株洲一批", "scope": "zhuzhou",
                      "starts_on": "2026-01-01", "ends_on": "2026-12-31"},
            )  # fmt: skip
        resp = world.call("zz-mgr", "POST", url, json={"to": state, "wave": wave})
        assert resp.status_code == 201, resp.text
    resp = world.call(
        "zz-admin", "POST", url, json={"to": "accepted", "override": True, "reason": "现场核验"}
    )
    assert resp.status_code == 201 and resp.json()["override"] is True
    rooms = world.call("zz-admin", "GET", f"{M}/rooms").json()["items"]
    room_url = f"{M}/rooms/{rooms[0]['id']}"
    check = world.call("zz-member", "GET", f"{room_url}/retirement").json()
    assert not check["retirable"]
    assert [(b["kind"], b["key"]) for b in check["blockers"]] == [("asset", "ZZ-SRV-0001")]
    assert (
        world.call(
            "zz-admin", "POST", f"{room_url}/status", json={"status": "consolidating"}
        ).status_code
        == 200
    )
    blocked = world.call("zz-admin", "POST", f"{room_url}/status", json={"status": "retired"})
    assert blocked.status_code == 409 and blocked.json()["code"] == "migration.room_not_retirable"
    assert blocked.json()["blockers"][0]["key"] == "ZZ-SRV-0001"
    assets = world.call("zz-admin", "GET", f"{M}/assets").json()["items"]
    asset_url = f"{M}/assets/{assets[0]['id']}"
    assert world.call("zz-mgr", "PATCH", asset_url, json={"status": "retired"}).status_code == 200
    bad = world.call("zz-mgr", "PATCH", asset_url, json={"status": "in-use"})
    assert bad.status_code == 422 and "cannot go from retired to in-use" in bad.json()["detail"]
    done = world.call("zz-admin", "POST", f"{room_url}/status", json={"status": "retired"})
    assert done.status_code == 200 and done.json()["status"] == "retired"


def test_import_over_http_reports_rows_and_writes_nothing_on_error(world: World) -> None:
    dry = world.call(
        "cs-admin",
        "POST",
        f"{M}/import?dry_run=true&filename=机房.csv",
        content=csv_bytes(ROOMS[:2]),
        headers={"Content-Type": "text/csv"},
    )
    assert dry.status_code == 200 and dry.json()["rows"][0]["action"] == "create"
    assert not dry.json()["written"]
    rejected = world.call(
        "cs-admin",
        "POST",
        f"{M}/import?filename=机房.csv",
        content=csv_bytes(ROOMS),
        headers={"Content-Type": "text/csv"},
    )
    assert rejected.status_code == 422
    body = rejected.json()
    assert body["code"] == "migration.import_invalid"
    assert body["errors"] == [
        {"where": "机房!3 [A 所属部门]", "message": "unknown department 'zz-data'"},
        {"where": "机房!4 [A 所属部门]", "message": "unknown department 'hn-health'"},
    ]
    assert body["report"]["written"] is False
    assert world.call("cs-admin", "GET", f"{M}/rooms").json()["total"] == 0
    gb = world.call(
        "cs-admin", "POST", f"{M}/import?filename=机房.csv", content=csv_bytes(ROOMS[:2], "gb18030")
    )
    assert gb.status_code == 422 and "GB18030" in gb.json()["detail"]
    fixed = world.call(
        "cs-admin",
        "POST",
        f"{M}/import?filename=机房.csv&encoding=gb18030",
        content=csv_bytes(ROOMS[:2], "gb18030"),
    )
    assert fixed.status_code == 200 and fixed.json()["written"] is True
    no_file = world.call("cs-admin", "POST", f"{M}/import", files={"other": ("x.csv", b"a,b")})
    assert no_file.status_code == 422 and no_file.json()["code"] == "migration.import_no_file"


def test_export_xlsx_has_every_sheet(world: World) -> None:
    _seed(world)
    resp = world.call("prov-admin", "GET", f"{M}/export")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(resp.content), read_only=True)
    assert book.sheetnames == ["waves", "rooms", "systems", "assets", "progress"]
    header = next(book["systems"].iter_rows(values_only=True))
    assert header[:3] == ("所属部门/department", "系统名称/name", "密级/classification")
    again = world.call(
        "prov-admin", "POST", f"{M}/import?filename=ledger.xlsx", content=resp.content
    ).json()
    assert again["counts"] == {"create": 0, "update": 0, "unchanged": 16, "error": 0}
