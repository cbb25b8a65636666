"""Ledger objects on either side of the API world, made through the store (not the API)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from controlplane.db.ledger_tables import LedgerAsset
from controlplane.db.uow import UnitOfWork
from controlplane.identity.audit import AuditContext
from controlplane.ledgerstore.objects import get_room, write_object
from controlplane.ledgerstore.rooms import find_room
from controlplane.ledgerstore.systems import find_system
from migration.columns import SheetKind
from migration.report import Action
from tests.api.conftest import World

CTX = AuditContext(None, source="test")


def _make(w: World, kind: SheetKind, values: dict[str, object]) -> None:
    with UnitOfWork(w.container.session_factory) as uow:
        write_object(uow.session, kind, values, ctx=CTX, expect=Action.CREATE)
        uow.commit()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_system(w: World, dept: str, **values: object) -> int:
    name = unique("系统")
    _make(w, SheetKind.SYSTEMS, {"department": dept, "name": name, "mlps_level": 2, **values})
    with UnitOfWork(w.container.session_factory) as uow:
        return find_system(uow.session, f"{dept}/{name}")


def new_room(w: World, dept: str) -> int:
    name = unique("机房")
    _make(w, SheetKind.ROOMS, {"department": dept, "name": name})
    with UnitOfWork(w.container.session_factory) as uow:
        return find_room(uow.session, f"{dept}/{name}")


def new_asset(w: World, dept: str) -> int:
    room_id = new_room(w, dept)
    with UnitOfWork(w.container.session_factory) as uow:
        _, room = get_room(uow.session, room_id, None)
    serial = unique("SN")
    _make(
        w,
        SheetKind.ASSETS,
        {"serial": serial, "department": dept, "room": room["name"], "kind": "server"},
    )
    with UnitOfWork(w.container.session_factory) as uow:
        found = uow.session.scalar(select(LedgerAsset.id).where(LedgerAsset.serial == serial))
    assert found is not None
    return found


def new_wave(w: World, scope: str) -> str:
    code = unique("w")
    _make(
        w,
        SheetKind.WAVES,
        {
            "code": code,
            "name": code,
            "scope": scope,
            "starts_on": "2026-01-01",
            "ends_on": "2026-06-30",
        },
    )
    return code
