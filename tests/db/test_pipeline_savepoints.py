"""Savepoints in controlplane.db.pipeline's queue, and `Write.latest_wins`:

- a SAVEPOINT and its RELEASE deferred in one queue are never sent (the
  writes between them are); a SAVEPOINT without its RELEASE is sent, and
  `rollback_to` it still undoes what followed;
- `Write.latest_wins` drops a superseded write unless a savepoint boundary
  lies between the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import pipeline
from controlplane.db.outbox import OutboxEvent, add_outbox
from controlplane.db.uow import UnitOfWork
from tests.db.pipeline_probe import (  # noqa: F401 - sent is a fixture
    Sent,
    driver_of,
    release_write,
    require_postgresql,
    savepoint_write,
    sent,
)

# -- helpers -------------------------------------------------------------------


def _outbox(session: Session, topic: str) -> None:
    add_outbox(session, topic, "test", topic, {})  # a deferred INSERT on PostgreSQL


def _outbox_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def _topics(container: Container) -> list[str]:
    with UnitOfWork(container.session_factory) as uow:
        return sorted(uow.session.scalars(select(OutboxEvent.topic)))


def _boundaries(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith(("SAVEPOINT ", "RELEASE ", "ROLLBACK TO "))]


@contextmanager
def _savepoint_after_a_write(
    container: Container, sent: Sent, before: str | None = "before"
) -> Iterator[tuple[UnitOfWork, Session, Any]]:
    """A unit of work (its transaction begun, the recording cleared) with an
    outbox write `before` queued (if any), then SAVEPOINT yg_t: (uow, session,
    driver)."""
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = driver_of(session)
        sent.clear()
        if before is not None:
            _outbox(session, before)
        pipeline.defer(session, savepoint_write("yg_t"))
        yield uow, session, driver


# -- 1. savepoints in the queue -----------------------------------------------------


def test_a_savepoint_released_in_the_same_queue_is_never_sent(
    container: Container, sent: Sent
) -> None:
    """SAVEPOINT, a write, RELEASE, all still queued when a read flushes them:
    the pair is dropped (nothing could roll back to it any more), the write lands."""
    require_postgresql(container)
    with _savepoint_after_a_write(container, sent, before=None) as (uow, session, driver):
        _outbox(session, "between")
        pipeline.defer(session, release_write("yg_t"))
        assert _outbox_count(session) == 1  # the read carries the queue
        statements = sent.on(driver)
        assert _boundaries(statements) == [], statements
        assert any(s.startswith("INSERT INTO outbox") for s in statements)
        uow.commit()
    assert _topics(container) == ["between"]


def test_an_unreleased_savepoint_is_sent_and_rollback_to_it_undoes_what_follows(
    container: Container, sent: Sent
) -> None:
    """A SAVEPOINT flushed without its RELEASE goes to the server; rollback_to
    then sends ROLLBACK TO it, which undoes the writes sent after it and drops
    those still queued. What came before it stays."""
    require_postgresql(container)
    with _savepoint_after_a_write(container, sent) as (uow, session, driver):
        _outbox(session, "undone-sent")
        assert _outbox_count(session) == 2  # flushed: the savepoint has left
        assert _boundaries(sent.on(driver)) == ["SAVEPOINT yg_t"]
        _outbox(session, "undone-queued")
        pipeline.rollback_to(session, "yg_t")
        assert _boundaries(sent.on(driver)) == ["SAVEPOINT yg_t", "ROLLBACK TO SAVEPOINT yg_t"]
        assert _outbox_count(session) == 1
        _outbox(session, "after")
        uow.commit()
    assert _topics(container) == ["after", "before"]


def test_a_release_whose_savepoint_has_left_is_sent(container: Container, sent: Sent) -> None:
    """Only a pair in one queue is dropped: a RELEASE deferred after its
    SAVEPOINT was sent still goes, and a later ROLLBACK TO it fails as on the server."""
    require_postgresql(container)
    with _savepoint_after_a_write(container, sent, before=None) as (_uow, session, driver):
        _outbox(session, "inside")
        session.execute(text("SELECT 1"))
        pipeline.defer(session, release_write("yg_t"))
        _outbox(session, "after")
        assert _outbox_count(session) == 2
        assert _boundaries(sent.on(driver)) == ["SAVEPOINT yg_t", "RELEASE SAVEPOINT yg_t"]
        with pytest.raises(DBAPIError):
            pipeline.rollback_to(session, "yg_t")  # released: it exists no more


def test_a_savepoint_rolled_back_to_before_it_left_costs_nothing(
    container: Container, sent: Sent
) -> None:
    """rollback_to a SAVEPOINT still queued: neither it nor a ROLLBACK TO is
    sent, the writes queued after it are dropped, those before it still go."""
    require_postgresql(container)
    with _savepoint_after_a_write(container, sent) as (uow, session, driver):
        _outbox(session, "undone")
        pipeline.rollback_to(session, "yg_t")
        assert _outbox_count(session) == 1
        assert _boundaries(sent.on(driver)) == []
        uow.commit()
    assert _topics(container) == ["before"]


# -- 2. latest_wins -------------------------------------------------------------------

_SET_SEQ = "UPDATE audit_head SET last_seq = "


def _set_head_seq(seq: int) -> pipeline.Write:
    return pipeline.Write(
        text(_SET_SEQ + ":seq WHERE id = 1"),
        {"seq": seq},
        _SET_SEQ + "%s WHERE id = 1",
        [(seq,)],
        latest_wins="t-head",
    )


_QUEUES = {
    "nothing-between": ([_set_head_seq(1), _set_head_seq(2)], [(2,)]),
    "savepoint-between": (
        [_set_head_seq(1), savepoint_write("yg_t"), _set_head_seq(2), release_write("yg_t")],
        [(1,), (2,)],
    ),
    "release-between": (
        [savepoint_write("yg_t"), _set_head_seq(1), release_write("yg_t"), _set_head_seq(2)],
        [(1,), (2,)],
    ),
}


@pytest.mark.parametrize("queue", list(_QUEUES))
def test_latest_wins_keeps_the_last_write_unless_a_savepoint_boundary_is_between(
    container: Container, sent: Sent, queue: str
) -> None:
    """Two writes of one `latest_wins` key: only the later is sent when nothing
    lies between them in the queue, both when a SAVEPOINT or a RELEASE does
    (the part after it may be rolled back alone). The row ends with the last
    value either way, on both backends."""
    writes, kept = _QUEUES[queue]
    on_postgresql = container.engine.dialect.name == "postgresql"
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = driver_of(session) if on_postgresql else None
        sent.clear()
        for write in writes:
            pipeline.defer(session, write)
        seq = session.scalar(text("SELECT last_seq FROM audit_head WHERE id = 1"))
        assert seq == 2
        if driver is not None:
            assert sent.params_of(driver, _SET_SEQ) == kept
            assert _boundaries(sent.on(driver)) == []  # each pair was in one queue
        uow.commit()
    with UnitOfWork(container.session_factory) as uow:
        assert uow.session.scalar(text("SELECT last_seq FROM audit_head WHERE id = 1")) == 2
