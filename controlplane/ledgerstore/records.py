"""Reads the ledger into the domain's canonical records and builds a `Catalog`.

Reads are Core selects joined to `org_nodes`, filtered by path prefix in SQL
when scopes are given, so the caller's catalog only holds what they may see
(plus the bare existence of asset serials, which are unique province-wide).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select, true
from sqlalchemy.orm import Session, aliased

from controlplane.db.ledger_tables import (
    LedgerAsset,
    LedgerRoom,
    LedgerSystem,
    LedgerWave,
    asset_systems,
    system_dependencies,
    system_projects,
)
from controlplane.db.scoping import on_path_clause, within_clause
from controlplane.db.tables import Cloud, OrgNode
from controlplane.vocabulary import CloudRole
from migration.catalog import Catalog, OrgRef, Record
from migration.model import (
    ArchitectureRequirement,
    AssetKind,
    AssetStatus,
    Classification,
    Origin,
    RoomStatus,
    SystemState,
    TargetCloud,
)

Scopes = tuple[str, ...] | None
Only = Collection[str] | None  # department codes, to load a small part of the ledger
SystemSelect = Select[LedgerSystem, str, str, str, str, str]
AssetSelect = Select[LedgerAsset, str, str, str]


def _scoped(path: Any, scopes: Scopes, code: Any = None, only: Only = None) -> ColumnElement[bool]:
    clause = true() if scopes is None else within_clause(path, scopes)
    if only is not None and code is not None:
        clause = and_(clause, code.in_(sorted(only)))
    return clause


def org_refs(session: Session) -> dict[str, OrgRef]:
    parent = aliased(OrgNode)
    rows = session.execute(
        select(OrgNode.code, OrgNode.name, OrgNode.level, OrgNode.path, parent.code).outerjoin(
            parent, parent.id == OrgNode.parent_id
        )
    )
    return {c: OrgRef(c, n, lv, p, pc) for c, n, lv, p, pc in rows}


def target_clouds(
    session: Session, scopes: Scopes
) -> tuple[dict[str, TargetCloud], dict[str, str]]:
    """The clouds a caller may target: the province's and those of their prefectures."""
    q = select(Cloud.code, Cloud.name, Cloud.role, Cloud.architectures).join(
        OrgNode, OrgNode.id == Cloud.owner_id
    )
    if scopes is not None:
        q = q.where(on_path_clause(OrgNode.path, scopes))
    clouds, names = {}, {}
    for code, name, role, archs in session.execute(q):
        clouds[code] = TargetCloud(code, CloudRole(role), tuple(archs))
        names[name] = code
    return clouds, names


def wave_records(session: Session, scopes: Scopes) -> dict[str, Record]:
    q = select(LedgerWave, OrgNode.code).join(OrgNode, OrgNode.id == LedgerWave.scope_id)
    if scopes is not None:
        q = q.where(on_path_clause(OrgNode.path, scopes))
    return {
        w.code: {
            "code": w.code,
            "name": w.name,
            "scope": scope,
            "starts_on": w.starts_on,
            "ends_on": w.ends_on,
        }
        for w, scope in session.execute(q)
    }


def room_records(
    session: Session, scopes: Scopes, only: Only = None, *, lock: bool = False
) -> dict[tuple[str, str], Record]:
    q = (
        select(LedgerRoom, OrgNode.code)
        .join(OrgNode, OrgNode.id == LedgerRoom.department_id)
        .where(_scoped(OrgNode.path, scopes, OrgNode.code, only))
        .order_by(OrgNode.path, LedgerRoom.name)
    )
    if lock:
        q = q.with_for_update(of=LedgerRoom)
    return {(dept, r.name): room_record(r, dept) for r, dept in session.execute(q)}


def room_record(r: LedgerRoom, dept: str) -> Record:
    return {
        "department": dept,
        "name": r.name,
        "address": r.address,
        "status": RoomStatus(r.status),
        "notes": r.notes,
    }


# Module-level aliases, so callers can add filters on the department of a query.
SYSTEM_DEPT = aliased(OrgNode, name="system_dept")
ASSET_DEPT = aliased(OrgNode, name="asset_dept")


def _system_query(scopes: Scopes, only: Only = None) -> SystemSelect:
    dept, room_ = SYSTEM_DEPT, aliased(LedgerRoom)
    current, target = aliased(Cloud), aliased(Cloud)
    return (
        select(
            LedgerSystem,
            dept.code,
            room_.name,
            current.code,
            target.code,
            LedgerWave.code,
        )
        .join(dept, dept.id == LedgerSystem.department_id)
        .outerjoin(room_, room_.id == LedgerSystem.room_id)
        .outerjoin(current, current.id == LedgerSystem.current_cloud_id)
        .outerjoin(target, target.id == LedgerSystem.target_cloud_id)
        .outerjoin(LedgerWave, LedgerWave.id == LedgerSystem.wave_id)
        .where(_scoped(dept.path, scopes, dept.code, only))
        .order_by(dept.path, LedgerSystem.name)
    )


def _links(
    session: Session, ids: Iterable[int]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Linked project codes and dependencies ("name" or "dept/name") per system id."""
    wanted = list(ids)
    projects: dict[int, list[str]] = defaultdict(list)
    deps: dict[int, list[str]] = defaultdict(list)
    if not wanted:
        return projects, deps
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for sid, code in session.execute(
            select(system_projects.c.system_id, OrgNode.code)
            .join(OrgNode, OrgNode.id == system_projects.c.project_id)
            .where(system_projects.c.system_id.in_(chunk))
        ):
            projects[sid].append(code)
        other, other_dept, own, own_dept = (
            aliased(LedgerSystem),
            aliased(OrgNode),
            aliased(LedgerSystem),
            aliased(OrgNode),
        )
        for sid, name, dept_code, own_code in session.execute(
            select(system_dependencies.c.system_id, other.name, other_dept.code, own_dept.code)
            .join(other, other.id == system_dependencies.c.depends_on_id)
            .join(other_dept, other_dept.id == other.department_id)
            .join(own, own.id == system_dependencies.c.system_id)
            .join(own_dept, own_dept.id == own.department_id)
            .where(system_dependencies.c.system_id.in_(chunk))
        ):
            deps[sid].append(name if dept_code == own_code else f"{dept_code}/{name}")
    return projects, deps


def system_rows(session: Session, q: SystemSelect) -> list[tuple[LedgerSystem, Record]]:
    rows = session.execute(q).all()
    projects, deps = _links(session, [r[0].id for r in rows])
    out = []
    for s, dept, room, current, target, wave in rows:
        out.append(
            (
                s,
                {
                    "department": dept,
                    "name": s.name,
                    "classification": Classification(s.classification),
                    "mlps_level": s.mlps_level,
                    "architecture": ArchitectureRequirement(s.architecture),
                    "origin": Origin(s.origin),
                    "room": room,
                    "current_cloud": current,
                    "target_cloud": target,
                    "wave": wave,
                    "state": SystemState(s.state),
                    "projects": tuple(sorted(projects.get(s.id, []))),
                    "depends_on": tuple(sorted(deps.get(s.id, []))),
                    "exemption_reason": s.exemption_reason,
                    "exemption_approver": s.exemption_approver,
                    "notes": s.notes,
                },
            )
        )
    return out


def system_records(
    session: Session, scopes: Scopes, only: Only = None, *, lock: bool = False
) -> dict[tuple[str, str], Record]:
    q = _system_query(scopes, only)
    if lock:
        q = q.with_for_update(of=LedgerSystem)
    return {(r["department"], r["name"]): r for _, r in system_rows(session, q)}


def system_query(scopes: Scopes, only: Only = None) -> SystemSelect:
    return _system_query(scopes, only)


def asset_query(scopes: Scopes, only: Only = None) -> AssetSelect:
    dept = ASSET_DEPT
    return (
        select(LedgerAsset, dept.code, LedgerRoom.name, dept.path)
        .join(LedgerRoom, LedgerRoom.id == LedgerAsset.room_id)
        .join(dept, dept.id == LedgerRoom.department_id)
        .where(_scoped(dept.path, scopes, dept.code, only))
        .order_by(dept.path, LedgerRoom.name, LedgerAsset.serial)
    )


def asset_rows(session: Session, q: AssetSelect) -> list[tuple[LedgerAsset, Record]]:
    rows = session.execute(q).all()
    served: dict[int, list[str]] = defaultdict(list)
    ids = [r[0].id for r in rows]
    for start in range(0, len(ids), 500):
        for aid, name in session.execute(
            select(asset_systems.c.asset_id, LedgerSystem.name)
            .join(LedgerSystem, LedgerSystem.id == asset_systems.c.system_id)
            .where(asset_systems.c.asset_id.in_(ids[start : start + 500]))
        ):
            served[aid].append(name)
    return [
        (
            a,
            {
                "serial": a.serial,
                "department": dept,
                "room": room,
                "kind": AssetKind(a.kind),
                "model": a.model,
                "systems": tuple(sorted(served.get(a.id, []))),
                "status": AssetStatus(a.status),
                "purchased_on": a.purchased_on,
                "notes": a.notes,
            },
        )
        for a, dept, room, _ in rows
    ]


def asset_records(
    session: Session,
    scopes: Scopes,
    extra_serials: Iterable[str] = (),
    only: Only = None,
    *,
    lock: bool = False,
) -> dict[str, Record]:
    """Assets in scope, plus the department of any other asset holding one of
    `extra_serials` (serials are unique province-wide; the planner says so)."""
    q = asset_query(scopes, only)
    if lock:
        q = q.with_for_update(of=LedgerAsset)
    records = {r["serial"]: r for _, r in asset_rows(session, q)}
    wanted = sorted(s for s in set(extra_serials) if s not in records)
    for start in range(0, len(wanted), 500):
        q = asset_query(None).where(LedgerAsset.serial.in_(wanted[start : start + 500]))
        records.update({r["serial"]: r for _, r in asset_rows(session, q)})
    return records


def load_catalog(
    session: Session,
    read_scopes: Scopes = None,
    write_scopes: Scopes = None,
    *,
    serials: Iterable[str] = (),
    departments: Iterable[str] | None = None,
    lock: bool = False,
) -> Catalog:
    """The catalog a write is planned against. `departments` (codes or names as
    written) limits the rooms, systems and assets loaded to those departments.
    `lock` takes row locks on what is loaded (PostgreSQL; SQLite's BEGIN
    IMMEDIATE already serialises writers), so a transition committed while an
    import is planned cannot be overwritten by it."""
    org = org_refs(session)
    only = None if departments is None else _department_codes(org, departments)
    clouds, cloud_names = target_clouds(session, read_scopes)
    return Catalog(
        org=org,
        clouds=clouds,
        cloud_names=cloud_names,
        waves=wave_records(session, read_scopes),
        rooms=room_records(session, read_scopes, only, lock=lock),
        systems=system_records(session, read_scopes, only, lock=lock),
        assets=asset_records(session, read_scopes, serials, only, lock=lock),
        read_scopes=read_scopes,
        write_scopes=write_scopes,
    )


def _department_codes(org: dict[str, OrgRef], named: Iterable[str]) -> set[str]:
    by_name: dict[str, str] = {r.name: r.code for r in org.values() if r.level == "department"}
    codes = set()
    for text in named:
        if text in org:
            codes.add(text)
        elif text in by_name:
            codes.add(by_name[text])
    return codes
