"""The transactional outbox: an event row written in the same transaction as the
change it announces, relayed after commit (the worker issue adds the relay).

    add_outbox(session, "quota.grant.changed", "quota_grant", "provincial/cs-data", {...})

Payloads carry ids and codes only: a relayed task re-reads the current desired
state, so duplicates and reordering converge.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from psycopg.types.json import Json
from sqlalchemy import JSON, Integer, String, Table, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from controlplane.db.base import Base, UtcDateTime, utcnow
from controlplane.db.pipeline import Write, defer


class OutboxEvent(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(100))
    aggregate_type: Mapped[str] = mapped_column(String(50))
    aggregate_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)


_INSERT = insert(cast(Table, OutboxEvent.__table__))
_PG_INSERT = (
    "INSERT INTO outbox (topic, aggregate_type, aggregate_id, payload, created_at) "
    "VALUES (%s, %s, %s, %s, %s)"
)


def add_outbox(
    session: Session,
    topic: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> None:
    """Append one event inside the caller's transaction (a single INSERT, no flush)."""
    at = now or utcnow()
    # Deferred (controlplane.db.pipeline): nobody reads the row back in this
    # transaction, so on PostgreSQL it travels with the next statement.
    defer(
        session,
        Write(
            _INSERT,
            {
                "topic": topic,
                "aggregate_type": aggregate_type,
                "aggregate_id": aggregate_id,
                "payload": dict(payload),
                "created_at": at,
            },
            _PG_INSERT,
            [(topic, aggregate_type, aggregate_id, Json(dict(payload)), at)],
        ),
    )
