"""Deferred writes (controlplane.db.pipeline) on both backends: a read never
misses one, a commit keeps them, a rollback (whole or to a savepoint) drops
them, a failing one surfaces as DBAPIError, and both forms of each Write the
admission path sends (outbox, request, Idempotency-Key answer) store the same
rows as the portable Core statement."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from controlplane.bootstrap import Container
from controlplane.db import idempotency, pipeline
from controlplane.db.outbox import OutboxEvent, add_outbox
from controlplane.db.uow import UnitOfWork

_PG_ONLY = "INSERT INTO outbox (topic, aggregate_type, aggregate_id, payload, created_at) "


def _outbox_write(topic: str) -> pipeline.Write:
    from datetime import UTC, datetime

    from psycopg.types.json import Json
    from sqlalchemy import Table, insert

    at = datetime(2026, 11, 28, tzinfo=UTC)
    table: Table = OutboxEvent.__table__  # type: ignore[assignment]
    row: dict[str, Any] = {
        "topic": topic,
        "aggregate_type": "t",
        "aggregate_id": "1",
        "payload": {"n": 1},
        "created_at": at,
    }
    return pipeline.Write(
        insert(table),
        row,
        _PG_ONLY + "VALUES (%s, %s, %s, %s, %s)",
        [(topic, "t", "1", Json({"n": 1}), at)],
    )


def _topics(container: Container) -> list[str]:
    with UnitOfWork(container.session_factory) as uow:
        return list(uow.session.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.id)))


def test_a_read_sees_a_deferred_write_and_commit_keeps_it(container: Container) -> None:
    with UnitOfWork(container.session_factory) as uow:
        pipeline.defer(uow.session, _outbox_write("a"))
        # An ORM read, a Core read and a raw fetch all see it.
        assert uow.session.scalars(select(OutboxEvent.topic)).all() == ["a"]
        assert uow.session.execute(text("SELECT count(*) FROM outbox")).scalar() == 1
        pipeline.defer(uow.session, _outbox_write("b"))
        uow.commit()
    assert _topics(container) == ["a", "b"]


def test_rollback_drops_deferred_writes(container: Container) -> None:
    with UnitOfWork(container.session_factory) as uow:
        pipeline.defer(uow.session, _outbox_write("gone"))
        uow.rollback()
    with UnitOfWork(container.session_factory) as uow:
        pipeline.defer(uow.session, _outbox_write("kept"))  # the same pooled connection
        uow.commit()
    assert _topics(container) == ["kept"]


def test_savepoint_rollback_drops_what_was_deferred_inside(container: Container) -> None:
    with UnitOfWork(container.session_factory) as uow:
        pipeline.defer(uow.session, _outbox_write("outer"))
        nested = uow.session.begin_nested()
        pipeline.defer(uow.session, _outbox_write("inner"))
        nested.rollback()
        uow.commit()
    assert _topics(container) == ["outer"]


def test_a_failing_deferred_write_raises_dbapi_error(container: Container) -> None:
    bad = pipeline.Write(
        text("INSERT INTO outbox (id, topic) VALUES (NULL, NULL)"),
        {},
        "INSERT INTO outbox (id, topic) VALUES (NULL, NULL)",
        [()],
    )
    with UnitOfWork(container.session_factory) as uow:
        with pytest.raises(DBAPIError):  # SQLite runs it at once; PostgreSQL at the next statement
            pipeline.defer(uow.session, bad)
            uow.session.execute(text("SELECT 1")).scalar()
        uow.rollback()
    assert _topics(container) == []


def test_both_forms_store_the_same_rows(container: Container) -> None:
    """add_outbox and the Idempotency-Key answer as the route sends them, read
    back through the ORM: equal on both backends (the PostgreSQL run takes the
    driver-SQL form, the SQLite run the Core form)."""
    with UnitOfWork(container.session_factory) as uow:
        add_outbox(uow.session, "quota.request.changed", "quota_request", "7", {"request": 7})
        assert idempotency.claim(uow.session, "alice", "k-1", "d" * 64) is None
        pipeline.execute_writes(
            uow.session, [idempotency.completion("alice", "k-1", 201, {"id": 7, "ok": True})]
        )
        uow.commit()
    with UnitOfWork(container.session_factory) as uow:
        event = uow.session.scalars(select(OutboxEvent)).one()
        assert (event.topic, event.aggregate_id, event.payload) == (
            "quota.request.changed",
            "7",
            {"request": 7},
        )
        assert event.created_at.tzinfo is not None and event.published_at is None
        stored = idempotency.claim(uow.session, "alice", "k-1", "d" * 64)
    assert stored == idempotency.StoredResponse(201, {"id": 7, "ok": True})
