"""Server-room retirement: what blocks it, and the status change that checks it.

`blockers` reads the room's systems and assets and asks
`migration.rooms.retirement_blockers`; `set_status` locks the room row, checks
the status table and (for `retired`) that nothing blocks, then audits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.db.ledger_tables import LedgerAsset, LedgerRoom, LedgerSystem
from controlplane.db.tables import OrgNode
from controlplane.identity import audit
from controlplane.identity.audit import AuditContext
from controlplane.ledgerstore.objects import jsonable
from controlplane.ledgerstore.records import room_record
from controlplane.vocabulary import NotFoundError
from migration.model import AssetStatus, RoomStatus, SystemState
from migration.rooms import Blocker, check_room_transition, retirement_blockers


def find_room(session: Session, ref: str) -> int:
    """A room by id, or by `department/name` (what the CLI takes)."""
    if ref.isdigit():
        return int(ref)
    dept, sep, name = ref.partition("/")
    found = session.scalar(
        select(LedgerRoom.id)
        .join(OrgNode, OrgNode.id == LedgerRoom.department_id)
        .where(OrgNode.code == dept, LedgerRoom.name == name)
    )
    if not sep or found is None:
        raise NotFoundError(
            f"no room {ref!r} (give its id or department/name)", code="migration.room_not_found"
        )
    return found


def blockers(session: Session, room_id: int) -> list[Blocker]:
    systems = session.execute(
        select(LedgerSystem.name, LedgerSystem.state).where(LedgerSystem.room_id == room_id)
    )
    assets = session.execute(
        select(LedgerAsset.serial, LedgerAsset.status).where(LedgerAsset.room_id == room_id)
    )
    return retirement_blockers(
        [(n, SystemState(s)) for n, s in systems], [(n, AssetStatus(s)) for n, s in assets]
    )


def set_status(session: Session, room_id: int, to: RoomStatus, ctx: AuditContext) -> LedgerRoom:
    room = session.scalar(select(LedgerRoom).where(LedgerRoom.id == room_id).with_for_update())
    if room is None:
        raise NotFoundError(f"no room {room_id}", code="migration.room_not_found")
    dept = session.execute(
        select(OrgNode.code, OrgNode.path).where(OrgNode.id == room.department_id)
    ).one()
    label = f"{dept[0]}/{room.name}"
    current = RoomStatus(room.status)
    found = blockers(session, room_id) if to is RoomStatus.RETIRED else []
    check_room_transition(label, current, to, found)
    if to is current:
        return room
    before = jsonable(room_record(room, dept[0]))
    room.status = to.value
    session.flush()
    audit.record(
        session,
        ctx,
        "migration.room.status",
        "migration_room",
        label[:128],
        scope_path=dept[1],
        before=before,
        after=jsonable(room_record(room, dept[0])),
    )
    return room
