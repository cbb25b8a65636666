"""`/v1/migration/rooms|assets|waves`: server rooms (and their retirement), IT
assets, and the migration waves. Scoped like the systems: rooms and assets by
their department, waves by the org node they cover.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, status
from sqlalchemy import select

from api.auth import Access
from api.deps import UoW
from api.routes.migration_access import (
    Reader,
    Writer,
    node_for_read,
    node_for_write,
    read_scopes,
)
from api.routes.migration_router import router
from api.routes.migration_schemas import (
    AssetIn,
    AssetOut,
    AssetPage,
    AssetPatch,
    BlockerOut,
    RoomCheckOut,
    RoomIn,
    RoomOut,
    RoomPage,
    RoomPatch,
    RoomStatusIn,
    WaveIn,
    WaveOut,
    WavePatch,
)
from controlplane.db.ledger_tables import LedgerAsset, LedgerRoom
from controlplane.db.uow import UnitOfWork
from controlplane.ledgerstore import rooms as room_store
from controlplane.ledgerstore.listing import list_assets, list_rooms
from controlplane.ledgerstore.objects import (
    delete_object,
    get_asset,
    get_room,
    get_wave,
    jsonable,
    wave_row,
    write_object,
)
from controlplane.ledgerstore.records import wave_records
from migration.catalog import Record
from migration.columns import SheetKind
from migration.model import AssetStatus, RoomStatus
from migration.report import Action


def _room_out(room: LedgerRoom, record: Record) -> RoomOut:
    return RoomOut(id=room.id, **jsonable(record))


def _asset_out(asset: LedgerAsset, record: Record) -> AssetOut:
    return AssetOut(id=asset.id, **jsonable(record))


def _write(
    uow: UnitOfWork,
    access: Access,
    kind: SheetKind,
    values: dict[str, Any],
    expect: Action,
    moved_from: str | None = None,
) -> Record:
    return write_object(
        uow.session,
        kind,
        values,
        ctx=access.audit,
        expect=expect,
        read_scopes=read_scopes(access),
        write_scopes=access.scopes,
        moved_from=moved_from,
    )


# -- rooms ---------------------------------------------------------------------


@router.get("/rooms", response_model=RoomPage)
def list_ledger_rooms(
    uow: UoW,
    access: Reader,
    prefecture: Annotated[str | None, Query(description="a prefecture or department code")] = None,
    status_: Annotated[RoomStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RoomPage:
    under = node_for_read(uow.session, prefecture, access).path if prefecture else None
    rows, total = list_rooms(
        uow.session,
        access.scopes,
        under=under,
        status=status_.value if status_ else None,
        limit=limit,
        offset=offset,
    )
    return RoomPage(items=[_room_out(r, rec) for r, rec in rows], total=total)


@router.post("/rooms", response_model=RoomOut, status_code=status.HTTP_201_CREATED)
def create_room(body: RoomIn, uow: UoW, access: Writer) -> RoomOut:
    node = node_for_write(uow.session, body.department, access, ("department",))
    values = {**body.model_dump(exclude_unset=True, mode="json"), "department": node.code}
    _write(uow, access, SheetKind.ROOMS, values, Action.CREATE)
    room_id = room_store.find_room(uow.session, f"{node.code}/{body.name}")
    out = _room_out(*get_room(uow.session, room_id, None))
    uow.commit()
    return out


@router.get("/rooms/{room_id}", response_model=RoomOut)
def get_ledger_room(room_id: int, uow: UoW, access: Reader) -> RoomOut:
    return _room_out(*get_room(uow.session, room_id, access.scopes))


def _room_for_write(
    uow: UnitOfWork, room_id: int, access: Access
) -> tuple[LedgerRoom, Record, str]:
    room, record = get_room(uow.session, room_id, read_scopes(access))
    access.check_within(room.department.path, f"room {room_id}")
    return room, record, room.department.path


@router.patch("/rooms/{room_id}", response_model=RoomOut)
def update_room(room_id: int, body: RoomPatch, uow: UoW, access: Writer) -> RoomOut:
    _, record, _ = _room_for_write(uow, room_id, access)
    values = {
        "department": record["department"],
        "name": record["name"],
        **body.model_dump(exclude_unset=True, mode="json"),
    }
    _write(uow, access, SheetKind.ROOMS, values, Action.UPDATE)
    uow.session.expire_all()
    out = _room_out(*get_room(uow.session, room_id, None))
    uow.commit()
    return out


@router.delete("/rooms/{room_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_room(room_id: int, uow: UoW, access: Writer) -> None:
    room, record, path = _room_for_write(uow, room_id, access)
    delete_object(uow.session, SheetKind.ROOMS, room, record, path, access.audit)
    uow.commit()


@router.get("/rooms/{room_id}/retirement", response_model=RoomCheckOut)
def check_room(room_id: int, uow: UoW, access: Reader) -> RoomCheckOut:
    """What keeps the room from retiring: unfinished systems, live assets."""
    room, record = get_room(uow.session, room_id, access.scopes)
    found = room_store.blockers(uow.session, room_id)
    return RoomCheckOut(
        room=_room_out(room, record),
        retirable=not found,
        blockers=[
            BlockerOut(kind=b.kind, key=b.key, state=b.state, message=b.describe()) for b in found
        ],
    )


@router.post("/rooms/{room_id}/status", response_model=RoomOut)
def set_room_status(room_id: int, body: RoomStatusIn, uow: UoW, access: Writer) -> RoomOut:
    """`active → consolidating → retired`; retiring answers 409
    `migration.room_not_retirable` with the blockers while anything remains."""
    _room_for_write(uow, room_id, access)
    room_store.set_status(uow.session, room_id, body.status, access.audit)
    out = _room_out(*get_room(uow.session, room_id, None))
    uow.commit()
    return out


# -- assets --------------------------------------------------------------------


@router.get("/assets", response_model=AssetPage)
def list_ledger_assets(
    uow: UoW,
    access: Reader,
    prefecture: Annotated[str | None, Query(description="a prefecture or department code")] = None,
    status_: Annotated[AssetStatus | None, Query(alias="status")] = None,
    room_id: Annotated[int | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AssetPage:
    under = node_for_read(uow.session, prefecture, access).path if prefecture else None
    rows, total = list_assets(
        uow.session,
        access.scopes,
        under=under,
        status=status_.value if status_ else None,
        room_id=room_id,
        limit=limit,
        offset=offset,
    )
    return AssetPage(items=[_asset_out(a, r) for a, r in rows], total=total)


@router.post("/assets", response_model=AssetOut, status_code=status.HTTP_201_CREATED)
def create_asset(body: AssetIn, uow: UoW, access: Writer) -> AssetOut:
    node = node_for_write(uow.session, body.department, access, ("department",))
    values = {**body.model_dump(exclude_unset=True, mode="json"), "department": node.code}
    _write(uow, access, SheetKind.ASSETS, values, Action.CREATE)
    asset_id = uow.session.scalar(select(LedgerAsset.id).where(LedgerAsset.serial == body.serial))
    out = _asset_out(*get_asset(uow.session, asset_id or 0, None))
    uow.commit()
    return out


@router.get("/assets/{asset_id}", response_model=AssetOut)
def get_ledger_asset(asset_id: int, uow: UoW, access: Reader) -> AssetOut:
    return _asset_out(*get_asset(uow.session, asset_id, access.scopes))


def _asset_for_write(
    uow: UnitOfWork, asset_id: int, access: Access
) -> tuple[LedgerAsset, Record, str]:
    asset, record = get_asset(uow.session, asset_id, read_scopes(access))
    path = asset.room.department.path
    access.check_within(path, f"asset {asset_id}")
    return asset, record, path


@router.patch("/assets/{asset_id}", response_model=AssetOut)
def update_asset(asset_id: int, body: AssetPatch, uow: UoW, access: Writer) -> AssetOut:
    _, record, _ = _asset_for_write(uow, asset_id, access)
    values = {
        "serial": record["serial"],
        "department": record["department"],
        "room": record["room"],
        **body.model_dump(exclude_unset=True, mode="json"),
    }
    _write(uow, access, SheetKind.ASSETS, values, Action.UPDATE)
    uow.session.expire_all()
    out = _asset_out(*get_asset(uow.session, asset_id, None))
    uow.commit()
    return out


@router.delete("/assets/{asset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_asset(asset_id: int, uow: UoW, access: Writer) -> None:
    asset, record, path = _asset_for_write(uow, asset_id, access)
    delete_object(uow.session, SheetKind.ASSETS, asset, record, path, access.audit)
    uow.commit()


# -- waves ---------------------------------------------------------------------


@router.get("/waves", response_model=list[WaveOut])
def list_waves(uow: UoW, access: Reader) -> list[WaveOut]:
    waves = wave_records(uow.session, access.scopes)
    return [WaveOut(**waves[c]) for c in sorted(waves)]


@router.post("/waves", response_model=WaveOut, status_code=status.HTTP_201_CREATED)
def create_wave(body: WaveIn, uow: UoW, access: Writer) -> WaveOut:
    node_for_write(uow.session, body.scope, access, ("province", "prefecture", "department"))
    record = _write(uow, access, SheetKind.WAVES, body.model_dump(mode="json"), Action.CREATE)
    uow.commit()
    return WaveOut(**record)


@router.get("/waves/{code}", response_model=WaveOut)
def get_ledger_wave(code: str, uow: UoW, access: Reader) -> WaveOut:
    return WaveOut(**get_wave(uow.session, code, access.scopes))


def _wave_for_write(uow: UnitOfWork, code: str, access: Access) -> Record:
    record = get_wave(uow.session, code, read_scopes(access))
    access.check_within(wave_row(uow.session, code).scope.path, f"wave {code!r}")
    return record


@router.patch("/waves/{code}", response_model=WaveOut)
def update_wave(code: str, body: WavePatch, uow: UoW, access: Writer) -> WaveOut:
    record = _wave_for_write(uow, code, access)
    values = {**jsonable(record), **body.model_dump(exclude_unset=True, mode="json")}
    out = _write(uow, access, SheetKind.WAVES, values, Action.UPDATE)
    uow.commit()
    return WaveOut(**out)


@router.delete("/waves/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_wave(code: str, uow: UoW, access: Writer) -> None:
    record = _wave_for_write(uow, code, access)
    wave = wave_row(uow.session, code)
    delete_object(uow.session, SheetKind.WAVES, wave, record, wave.scope.path, access.audit)
    uow.commit()
