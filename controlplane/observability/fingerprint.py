"""A cheap "did anything the metrics show change?" check: one statement.

For every table the exposition reads, one row of (row count, a sum or maximum
that every write moves, the latest timestamp) — a `UNION ALL` of aggregates,
milliseconds even for tens of thousands of grant rows:

- inserts move `max(id)` (observations are replaced by delete + insert);
- deletes move the count;
- updates move the timestamp column, and where a per-row counter exists
  (`quota_grants.generation`, `sync_status.calls_total`) its sum, which also
  catches an update whose timestamp lost a race with a later commit.

The UTC date is part of the fingerprint (a wave falls behind plan at
midnight). What this cannot see — an update racing another commit on a table
without a counter — is bounded by the cache's `max_age_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import date
from typing import Any

from sqlalchemy import String, func, literal, select, union_all
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db.ledger_tables import LedgerAsset, LedgerRoom, LedgerSystem, LedgerWave
from controlplane.db.quota_tables import QuotaGrant, QuotaRequestRow, QuotaUsage
from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import (
    CapacityObservation,
    Operation,
    QuotaObservation,
    SyncStatus,
)

# table -> (the column every write moves, the timestamp column)
_WATCHED: tuple[tuple[Any, Any, Any], ...] = (
    (Cloud, Cloud.id, Cloud.updated_at),
    (OrgNode, OrgNode.id, OrgNode.updated_at),
    (QuotaGrant, QuotaGrant.generation, QuotaGrant.updated_at),
    (QuotaUsage, QuotaUsage.id, QuotaUsage.observed_at),
    (QuotaRequestRow, QuotaRequestRow.id, QuotaRequestRow.updated_at),
    (CapacityObservation, CapacityObservation.id, CapacityObservation.observed_at),
    (QuotaObservation, QuotaObservation.id, QuotaObservation.observed_at),
    (SyncStatus, SyncStatus.calls_total, SyncStatus.last_attempt_at),
    (Operation, Operation.id, Operation.updated_at),
    (LedgerSystem, LedgerSystem.id, LedgerSystem.updated_at),
    (LedgerRoom, LedgerRoom.id, LedgerRoom.updated_at),
    (LedgerAsset, LedgerAsset.id, LedgerAsset.updated_at),
    (LedgerWave, LedgerWave.id, LedgerWave.updated_at),
)


def _statement() -> Any:
    parts = []
    for table, mover, stamp in _WATCHED:
        counter = mover.key in {"generation", "calls_total"}
        aggregate = func.sum(mover) if counter else func.max(mover)
        parts.append(
            select(
                literal(table.__tablename__, String).label("name"),
                func.count().label("rows"),
                aggregate.label("mover"),
                func.max(stamp).label("stamp"),
            ).select_from(table)
        )
    return union_all(*parts)


class DbFingerprint:
    def __init__(self, session_factory: sessionmaker[Session], today: Callable[[], date]) -> None:
        self._factory = session_factory
        self._today = today
        self._statement = _statement()

    def __call__(self) -> Hashable:
        with UnitOfWork(self._factory) as uow:
            rows = uow.session.execute(self._statement).all()
        return (self._today(), tuple(sorted((str(r[0]), r[1], r[2], str(r[3])) for r in rows)))
