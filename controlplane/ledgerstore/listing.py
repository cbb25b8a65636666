"""Paged, filtered lists of the ledger for the API, scoped in SQL before paging."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.db.ledger_tables import LedgerAsset, LedgerRoom, LedgerSystem, LedgerWave
from controlplane.db.scoping import within_clause
from controlplane.db.tables import OrgNode
from controlplane.ledgerstore.records import (
    ASSET_DEPT,
    SYSTEM_DEPT,
    Scopes,
    asset_query,
    asset_rows,
    room_record,
    system_query,
    system_rows,
)
from migration.catalog import Record


def _count(session: Session, q: Any) -> int:
    return session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0


def list_systems(
    session: Session,
    scopes: Scopes,
    *,
    under: str | None = None,
    state: str | None = None,
    wave: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[tuple[LedgerSystem, Record]], int]:
    """`under`: an org path (a prefecture's or a department's) to narrow to."""
    q = system_query(scopes)
    if under is not None:
        q = q.where(within_clause(SYSTEM_DEPT.path, (under,)))
    if state is not None:
        q = q.where(LedgerSystem.state == state)
    if wave is not None:
        q = q.where(LedgerSystem.wave_id.in_(select(LedgerWave.id).where(LedgerWave.code == wave)))
    return system_rows(session, q.limit(limit).offset(offset)), _count(session, q)


def list_assets(
    session: Session,
    scopes: Scopes,
    *,
    under: str | None = None,
    status: str | None = None,
    room_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[tuple[LedgerAsset, Record]], int]:
    q = asset_query(scopes)
    if under is not None:
        q = q.where(within_clause(ASSET_DEPT.path, (under,)))
    if status is not None:
        q = q.where(LedgerAsset.status == status)
    if room_id is not None:
        q = q.where(LedgerAsset.room_id == room_id)
    return asset_rows(session, q.limit(limit).offset(offset)), _count(session, q)


def list_rooms(
    session: Session,
    scopes: Scopes,
    *,
    under: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[tuple[LedgerRoom, Record]], int]:
    q = select(LedgerRoom, OrgNode.code).join(OrgNode, OrgNode.id == LedgerRoom.department_id)
    if scopes is not None:
        q = q.where(within_clause(OrgNode.path, scopes))
    if under is not None:
        q = q.where(within_clause(OrgNode.path, (under,)))
    if status is not None:
        q = q.where(LedgerRoom.status == status)
    q = q.order_by(OrgNode.path, LedgerRoom.name)
    rows = session.execute(q.limit(limit).offset(offset)).all()
    return [(r, room_record(r, d)) for r, d in rows], _count(session, q)
