"""One ledger object at a time: the API's and CLI's create, update, read, delete.

A create or update is planned exactly like a one-row import (same parsing,
same references, same rules: the new-system gate, architecture fit, wave
scope, status tables), so the API and the spreadsheets can never disagree.
Each write is audited with the record before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from controlplane.db.ledger_tables import (
    LedgerAsset,
    LedgerRoom,
    LedgerSystem,
    LedgerWave,
)
from controlplane.db.tables import OrgNode
from controlplane.identity import audit
from controlplane.identity.audit import AuditContext
from controlplane.ledgerstore.records import (
    Scopes,
    asset_query,
    asset_rows,
    load_catalog,
    room_record,
    system_query,
    system_rows,
    wave_records,
)
from controlplane.ledgerstore.writer import PlanWriter
from controlplane.vocabulary import ConflictError, InvalidInputError, NotFoundError, Problem
from migration.catalog import Record
from migration.columns import SheetKind
from migration.importing import plan_import
from migration.mapping import MappedSheet
from migration.model import SystemState
from migration.report import Action
from migration.rows import parse_row

SINGULAR = {
    SheetKind.SYSTEMS: "system",
    SheetKind.ROOMS: "room",
    SheetKind.ASSETS: "asset",
    SheetKind.WAVES: "wave",
}
# Deleting a system that is moving or moved would erase the migration's record.
_UNDELETABLE = frozenset({SystemState.MIGRATING, SystemState.CUT_OVER, SystemState.ACCEPTED})


def jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as JSON (audit entries, API bodies)."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, date):
            out[k] = v.isoformat()
        elif isinstance(v, tuple):
            out[k] = list(v)
        else:
            out[k] = v
    return out


def _cells(values: Mapping[str, Any]) -> dict[str, object]:
    """JSON values as cells: lists become the sheet's `a; b` form."""
    return {
        k: "; ".join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in values.items()
    }


def write_object(
    session: Session,
    kind: SheetKind,
    values: Mapping[str, Any],
    *,
    ctx: AuditContext,
    expect: Action,
    read_scopes: Scopes = None,
    write_scopes: Scopes = None,
    moved_from: str | None = None,
) -> Record:
    """Creates (`expect=CREATE`) or updates (`expect=UPDATE`) one object."""
    row = parse_row(kind, 1, _cells(values))
    sheet = MappedSheet("request", kind, {f: f for f in values}, [row])
    departments = {str(values[k]) for k in ("department",) if values.get(k)}
    departments |= {e.rpartition("/")[0] for e in values.get("depends_on") or () if "/" in e}
    if moved_from:
        departments.add(moved_from)
    serials = [str(values["serial"])] if values.get("serial") else []
    catalog = load_catalog(
        session, read_scopes, write_scopes, serials=serials, departments=departments, lock=True
    )
    plan = plan_import([sheet], catalog)
    outcome = plan.outcomes[0]
    if outcome.problems:
        raise InvalidInputError(
            "; ".join(
                f"{p.column}: {p.message}" if p.column else p.message for p in outcome.problems
            ),
            code="migration.invalid",
            problems=[Problem(p.column, p.message) for p in outcome.problems],
        )
    if expect is Action.CREATE and outcome.action is not Action.CREATE:
        raise ConflictError(
            f"{SINGULAR[kind]} {outcome.key!r} already exists", code="migration.exists"
        )
    if expect is Action.UPDATE and outcome.action is Action.CREATE:
        raise NotFoundError(f"no {SINGULAR[kind]} {outcome.key!r}", code="migration.not_found")
    PlanWriter(session).write(plan.ops)
    op = plan.ops[0] if plan.ops else None
    record = op.record if op else _current(catalog, kind, outcome.key)
    if op is not None:
        owner = record["scope"] if kind is SheetKind.WAVES else record["department"]
        audit.record(
            session,
            ctx,
            f"migration.{SINGULAR[kind]}.{op.action.value}",
            f"migration_{SINGULAR[kind]}",
            outcome.key[:128],
            scope_path=catalog.path_of(owner),
            before=jsonable(op.before) if op.before else None,
            after=jsonable(record),
        )
    return record


def _current(catalog: Any, kind: SheetKind, key: str) -> Record:
    if kind is SheetKind.WAVES:
        return dict(catalog.waves[key])
    if kind is SheetKind.ASSETS:
        return dict(catalog.assets[key])
    dept, _, name = key.partition("/")
    table = catalog.rooms if kind is SheetKind.ROOMS else catalog.systems
    return dict(table[(dept, name)])


# -- reads ---------------------------------------------------------------------


def get_system(session: Session, system_id: int, scopes: Scopes) -> tuple[LedgerSystem, Record]:
    rows = system_rows(session, system_query(scopes).where(LedgerSystem.id == system_id))
    if not rows:
        raise NotFoundError(f"no system {system_id}", code="migration.system_not_found")
    return rows[0]


def get_room(session: Session, room_id: int, scopes: Scopes) -> tuple[LedgerRoom, Record]:
    q = (
        select(LedgerRoom, OrgNode.code, OrgNode.path)
        .join(OrgNode, OrgNode.id == LedgerRoom.department_id)
        .where(LedgerRoom.id == room_id)
    )
    row = session.execute(q).first()
    if row is None or (scopes is not None and not any(row[2].startswith(s) for s in scopes)):
        raise NotFoundError(f"no room {room_id}", code="migration.room_not_found")
    return row[0], room_record(row[0], row[1])


def get_asset(session: Session, asset_id: int, scopes: Scopes) -> tuple[LedgerAsset, Record]:
    rows = asset_rows(session, asset_query(scopes).where(LedgerAsset.id == asset_id))
    if not rows:
        raise NotFoundError(f"no asset {asset_id}", code="migration.asset_not_found")
    return rows[0]


def get_wave(session: Session, code: str, scopes: Scopes) -> Record:
    found = wave_records(session, scopes).get(code)
    if found is None:
        raise NotFoundError(f"no wave {code!r}", code="migration.wave_not_found")
    return found


# -- deletes -------------------------------------------------------------------


def delete_object(
    session: Session, kind: SheetKind, obj: Any, record: Record, path: str, ctx: AuditContext
) -> None:
    """Deletes one object unless the ledger still needs it (409 saying why)."""
    key = record.get("code") or record.get("serial") or f"{record['department']}/{record['name']}"
    if kind is SheetKind.SYSTEMS and record["state"] in _UNDELETABLE:
        raise ConflictError(
            f"system {key!r} is {record['state']}: decommission it instead of deleting",
            code="migration.in_progress",
        )
    if kind is SheetKind.ROOMS:
        used = session.scalar(
            select(exists().where(LedgerSystem.room_id == obj.id))
        ) or session.scalar(select(exists().where(LedgerAsset.room_id == obj.id)))
        if used:
            raise ConflictError(
                f"room {key!r} still holds systems or assets", code="migration.room_in_use"
            )
    if kind is SheetKind.WAVES and session.scalar(
        select(exists().where(LedgerSystem.wave_id == obj.id))
    ):
        raise ConflictError(f"wave {key!r} still has systems", code="migration.wave_in_use")
    session.delete(obj)
    session.flush()
    audit.record(
        session,
        ctx,
        f"migration.{SINGULAR[kind]}.delete",
        f"migration_{SINGULAR[kind]}",
        str(key)[:128],
        scope_path=path,
        before=jsonable(record),
    )


def wave_row(session: Session, code: str) -> LedgerWave:
    wave = session.scalar(select(LedgerWave).where(LedgerWave.code == code))
    if wave is None:
        raise NotFoundError(f"no wave {code!r}", code="migration.wave_not_found")
    return wave
