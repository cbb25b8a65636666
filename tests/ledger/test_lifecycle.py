"""Transitions on the real databases: verified acceptance, overrides, room
retirement, the inventory table, and progress on a seeded ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from controlplane.bootstrap import Container
from controlplane.db.identity_tables import AuditEntry
from controlplane.db.ledger_tables import InventoryItem, LedgerTransition
from controlplane.db.uow import UnitOfWork
from controlplane.ledgerstore import rooms as room_store
from controlplane.ledgerstore.inventory import ObservedItem, replace_cloud_inventory
from controlplane.ledgerstore.progress import progress
from controlplane.vocabulary import ConflictError, InvalidInputError
from migration.model import RoomStatus, SystemState
from tests.ledger.conftest import (
    ASSETS,
    CTX,
    count,
    move,
    run_import,
    seeded,
    sync,
    xlsx,
)

S = SystemState
PORTAL = "cs-data/长沙市政务服务网"


def server(i: int, project: str | None, running: bool = True, arch: str = "x86_64") -> ObservedItem:
    status = "ACTIVE" if running else "SHUTOFF"
    return ObservedItem("server", f"vm-{i}", f"portal-{i}", project, status, running, arch)


def _to_cut_over(c: Container, system: str) -> None:
    for state in (S.PLANNED, S.MIGRATING, S.CUT_OVER):
        move(c, system, state)


def _refused(c: Container, system: str) -> str:
    with pytest.raises(ConflictError) as err:
        move(c, system, S.ACCEPTED)
    assert err.value.code == "migration.acceptance_unverified"
    return err.value.message


def test_acceptance_is_refused_without_evidence_and_granted_with_it(topo: Container) -> None:
    seeded(topo)
    _to_cut_over(topo, PORTAL)
    now = datetime.now(UTC)
    assert "cloud 'changsha' has no inventory sync yet" in _refused(topo, PORTAL)
    sync(topo, "changsha", [server(1, "cs-data-portal")], now - timedelta(days=3))
    assert "older than 2 days" in _refused(topo, PORTAL)
    sync(
        topo,
        "changsha",
        [server(1, "cs-data-portal", running=False), server(2, "zz-data-portal")],
        now,
    )
    assert "shows nothing running for cs-data-portal" in _refused(topo, PORTAL)
    # a running server on another cloud proves nothing about the target cloud
    sync(topo, "zhuzhou", [server(3, "cs-data-portal")], now)
    assert "shows nothing running" in _refused(topo, PORTAL)
    # an older observation arriving late is ignored: the newest sync stands
    sync(topo, "changsha", [server(1, "cs-data-portal")], now - timedelta(hours=1))
    assert "shows nothing running" in _refused(topo, PORTAL)

    sync(
        topo,
        "changsha",
        [server(1, "cs-data-portal"), server(4, "cs-data-portal")],
        now + timedelta(seconds=1),
    )
    t = move(topo, PORTAL, S.ACCEPTED)
    assert t.to_state is S.ACCEPTED and not t.override
    assert t.evidence["running"] == 2 and t.evidence["cloud"] == "changsha"
    assert [i["id"] for i in t.evidence["items"]] == ["vm-1", "vm-4"]
    with UnitOfWork(topo.session_factory) as uow:
        steps = uow.session.scalars(select(LedgerTransition).order_by(LedgerTransition.id)).all()
        assert [(s.from_state, s.to_state) for s in steps] == [
            ("assessed", "planned"), ("planned", "migrating"),
            ("migrating", "cut-over"), ("cut-over", "accepted"),
        ]  # fmt: skip
        assert steps[-1].evidence["running"] == 2
        entry = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "migration.system.transition")
        ).all()[-1]
        assert entry.object_id == PORTAL and entry.after is not None
        assert entry.after["to"] == "accepted" and entry.after["evidence"]["running"] == 2
        assert entry.scope_path == "/hunan/changsha/cs-data/"


def test_an_admin_override_is_recorded_with_its_reason(topo: Container) -> None:
    seeded(topo)
    system = "hn-health/全民健康信息平台"
    _to_cut_over(topo, system)
    assert "no inventory sync yet" in _refused(topo, system)
    with pytest.raises(InvalidInputError):
        move(topo, system, S.ACCEPTED, override=True)
    t = move(topo, system, S.ACCEPTED, override=True, reason="同步任务未上线，现场核验")
    assert t.override and t.evidence["unverified_because"].endswith("no inventory sync yet")
    with UnitOfWork(topo.session_factory) as uow:
        last = uow.session.scalars(
            select(LedgerTransition).order_by(LedgerTransition.id.desc())
        ).first()
        assert last is not None and last.override and last.reason == "同步任务未上线，现场核验"


def test_illegal_transitions_on_the_database(topo: Container) -> None:
    seeded(topo)
    with pytest.raises(ConflictError) as err:
        move(topo, PORTAL, S.ACCEPTED)
    assert err.value.code == "migration.illegal_transition"
    assert "cannot go from assessed to accepted" in err.value.message
    secret = "cs-data/长沙市公文交换"
    move(topo, secret, S.ASSESSED)
    with pytest.raises(ConflictError) as err:
        move(topo, secret, S.PLANNED, wave="cs-2026-1")
    assert err.value.code == "migration.classified"
    move(topo, secret, S.EXEMPTED, reason="涉密系统", approver="市保密局")
    with pytest.raises(ConflictError) as err:
        move(topo, secret, S.ACCEPTED)
    assert err.value.extra == {"from": "exempted", "to": "accepted", "allowed": ["assessed"]}


def test_room_retirement_is_blocked_then_allowed(topo: Container) -> None:
    seeded(topo)
    with UnitOfWork(topo.session_factory) as uow:
        room_id = room_store.find_room(uow.session, "cs-data/长沙数据局机房")
        found = room_store.blockers(uow.session, room_id)
        with pytest.raises(ConflictError) as err:
            room_store.set_status(uow.session, room_id, RoomStatus.RETIRED, CTX)
        assert err.value.code == "migration.room_illegal_transition"  # active → retired
        room_store.set_status(uow.session, room_id, RoomStatus.CONSOLIDATING, CTX)
        with pytest.raises(ConflictError) as err:
            room_store.set_status(uow.session, room_id, RoomStatus.RETIRED, CTX)
        uow.commit()
    assert [(b.kind, b.key, b.state) for b in found] == [
        ("system", "长沙市公文交换", "inventoried"),
        ("system", "长沙市办公平台", "inventoried"),
        ("system", "长沙市政务服务网", "assessed"),
        ("asset", "CS-SRV-0001", "in-use"),
        ("asset", "CS-STO-0001", "idle"),
    ]
    assert err.value.code == "migration.room_not_retirable"
    assert len(err.value.extra["blockers"]) == 5

    _to_cut_over(topo, PORTAL)
    sync(topo, "changsha", [server(1, "cs-data-portal")])
    move(topo, PORTAL, S.ACCEPTED)
    move(
        topo, "cs-data/长沙市公文交换", S.EXEMPTED, reason="涉密，不上云", approver="市保密局 李某"
    )
    move(topo, "cs-data/长沙市办公平台", S.DECOMMISSIONED)
    # a room is retired in the same import that retires its last assets
    assets = [ASSETS[0], *[[*r[:6], "已退役", r[7]] for r in ASSETS[1:3]]]
    rooms = [["所属部门", "机房名称", "机房状态"], ["cs-data", "长沙数据局机房", "已撤销"]]
    blocked = run_import(topo, "retire.xlsx", xlsx({"机房": rooms}))
    assert any("cannot retire: asset 'CS-SRV-0001' is in-use" in str(p) for p in blocked.problems)
    report = run_import(topo, "retire.xlsx", xlsx({"资产": assets, "机房": rooms}))
    assert report.ok, [str(p) for p in report.problems]
    with UnitOfWork(topo.session_factory) as uow:
        assert room_store.blockers(uow.session, room_id) == []
        room = room_store.set_status(uow.session, room_id, RoomStatus.RETIRED, CTX)
        assert room.status == "retired"
    # nothing live may move into a retired room
    live = [ASSETS[0], ["CS-NEW-0001", "cs-data", "长沙数据局机房", "服务器", "", "", "在用", ""]]
    refused = run_import(topo, "late.xlsx", xlsx({"资产": live}))
    assert any("room '长沙数据局机房' is retired" in str(p) for p in refused.problems)


def test_replace_cloud_inventory_is_whole_and_checked(topo: Container) -> None:
    now = datetime.now(UTC)
    with UnitOfWork(topo.session_factory) as uow:
        first = replace_cloud_inventory(
            uow.session,
            "changsha",
            [server(1, "cs-data-portal"), server(2, "no-such-project")],
            now,
        )
        uow.commit()
    assert first.applied and first.items == 2 and first.unknown_projects == ("no-such-project",)
    sync(topo, "changsha", [server(3, "cs-data-portal", running=False)], now + timedelta(minutes=5))
    with UnitOfWork(topo.session_factory) as uow:
        rows = uow.session.scalars(select(InventoryItem)).all()
        assert [(r.external_id, r.running, r.project_id is not None) for r in rows] == [
            ("vm-3", False, True)
        ]
        with pytest.raises(InvalidInputError):
            replace_cloud_inventory(
                uow.session, "changsha", [server(1, None), server(1, None)], now
            )
        with pytest.raises(InvalidInputError):
            replace_cloud_inventory(uow.session, "changsha", [], now.replace(tzinfo=None))
    assert count(topo, InventoryItem) == 1


def test_progress_on_a_seeded_ledger(topo: Container) -> None:
    seeded(topo)
    _to_cut_over(topo, PORTAL)
    sync(topo, "changsha", [server(1, "cs-data-portal")])
    move(topo, PORTAL, S.ACCEPTED)
    _to_cut_over(topo, "hn-health/全民健康信息平台")
    move(topo, "hn-health/全民健康信息平台", S.ACCEPTED, override=True, reason="现场核验")
    move(topo, "cs-data/长沙市办公平台", S.ASSESSED)
    move(topo, "cs-data/长沙市办公平台", S.PLANNED, wave="cs-2026-1")
    move(topo, "hn-health/专网影像系统", S.EXEMPTED, reason="专网承载", approver="王某")
    with UnitOfWork(topo.session_factory) as uow:
        view = progress(uow.session, None, date(2026, 7, 1))
        local = progress(uow.session, ("/hunan/changsha/",), date(2026, 7, 1))
        only_cs = progress(uow.session, None, date(2026, 7, 1), under="changsha")
    t = view.rates.total
    assert view.scope == "hunan"
    assert (t.systems, t.classified, t.exempted, t.in_scope, t.accepted) == (7, 1, 1, 5, 2)
    assert t.rate == 0.4 and t.in_progress == 1 and t.not_started == 2
    by_parent = {r.scope: (r.level, r.in_scope, r.accepted, r.rate) for r in view.rates.by_parent}
    assert by_parent == {
        "changsha": ("prefecture", 2, 1, 0.5),
        "zhuzhou": ("prefecture", 1, 0, 0.0),
        "hunan": ("province", 2, 1, 0.5),
    }
    by_dept = {r.scope: r.rate for r in view.rates.by_department}
    assert by_dept == {"cs-data": 0.5, "hn-health": 0.5, "zz-data": 0.0}
    waves = {w.wave.code: w for w in view.waves}
    assert waves["cs-2026-1"].behind_plan and waves["cs-2026-1"].unfinished == 1
    assert not waves["hn-2026-1"].behind_plan and waves["hn-2026-1"].finished == 1
    assert view.as_dict()["behind_plan"] == ["cs-2026-1"]
    assert view.rooms == {"total": 3, "active": 3}
    assert view.assets == {"total": 4, "idle": 1, "in-use": 2, "retired": 1}
    for scoped in (local, only_cs):
        assert scoped.scope == "changsha"
        assert [r.scope for r in scoped.rates.by_department] == ["cs-data"]
        assert scoped.rates.total.rate == 0.5
        assert [w.wave.code for w in scoped.waves] == ["cs-2026-1", "hn-2026-1"]
        assert {w.wave.code: w.total for w in scoped.waves} == {"cs-2026-1": 2, "hn-2026-1": 0}
