"""What controlplane.db.pipeline carries along a transaction:

- carried reads travel with the fetch of their own group only (LOCKS or
  LOOKUPS): announced lookups never take the audit head lock;
- the transaction memo (`remember` / `recall`) ends with the transaction and
  with any rollback to a savepoint.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from controlplane.bootstrap import Container
from controlplane.db import pipeline
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.quotastore import SqlQuotaStore
from tests.db.pipeline_probe import (  # noqa: F401 - sent is a fixture
    Sent,
    driver_of,
    require_postgresql,
    savepoint_write,
    sent,
)
from tests.db.quota_world import make_world

# -- 1. carry groups ------------------------------------------------------------------

_LOOKUP_SQL = "SELECT 'lookup' AS what"
_LOCK_SQL = "SELECT 'lock' AS what"


def test_carried_reads_go_with_a_fetch_of_their_own_group_only(
    container: Container, sent: Sent
) -> None:
    """A LOOKUPS read is not sent with a LOCKS fetch, nor a LOCKS read with a
    LOOKUPS fetch; each is sent once, with the first fetch of its group, and
    `carried` hands its rows over once."""
    require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = driver_of(session)
        assert pipeline.carry_read(session, "t-lookup", _LOOKUP_SQL, None, group=pipeline.LOOKUPS)
        assert pipeline.carry_read(session, "t-lock", _LOCK_SQL, None, group=pipeline.LOCKS)
        sent.clear()

        rows = pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert [r.one for r in rows] == [1]
        assert sent.on(driver) == ["SELECT 1 AS one", _LOCK_SQL]
        assert [r.what for r in pipeline.carried(session, "t-lock") or []] == ["lock"]
        assert pipeline.carried(session, "t-lock") is None  # handed over once

        sent.clear()
        rows = pipeline.fetch(session, "SELECT 2 AS two", None, carry=pipeline.LOOKUPS)
        assert [r.two for r in rows] == [2]
        assert sent.on(driver) == ["SELECT 2 AS two", _LOOKUP_SQL]
        assert [r.what for r in pipeline.carried(session, "t-lookup") or []] == ["lookup"]

        sent.clear()
        pipeline.fetch(session, "SELECT 3 AS three", None, carry=pipeline.LOCKS)
        pipeline.fetch(session, "SELECT 4 AS four", None, carry=pipeline.LOOKUPS)
        assert sent.on(driver) == ["SELECT 3 AS three", "SELECT 4 AS four"]


def test_carried_is_none_before_the_fetch_and_then_the_read_is_never_sent(
    container: Container, sent: Sent
) -> None:
    """`carried` before the matching fetch answers None and withdraws the read
    (the caller reads for itself): the fetch then does not send it."""
    require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = driver_of(session)
        pipeline.carry_read(session, "t-lock", _LOCK_SQL, None, group=pipeline.LOCKS)
        assert pipeline.carried(session, "t-lock") is None
        sent.clear()
        pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert sent.on(driver) == ["SELECT 1 AS one"]
        assert pipeline.carried(session, "t-lock") is None


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_read_never_sent_ends_with_its_transaction(
    container: Container, sent: Sent, end: str
) -> None:
    require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        pipeline.carry_read(session, "t-lock", _LOCK_SQL, None, group=pipeline.LOCKS)
        session.commit() if end == "commit" else session.rollback()
        driver = driver_of(session)
        sent.clear()
        pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert sent.on(driver) == ["SELECT 1 AS one"]
        assert pipeline.carried(session, "t-lock") is None


def _audit_head_free(container: Container) -> bool:
    """From another connection: can the audit head be locked right now?"""
    with container.engine.connect() as other:
        try:
            other.execute(
                text("SELECT last_seq FROM audit_head WHERE id = 1 FOR UPDATE NOWAIT")
            ).all()
        except DBAPIError as exc:
            if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                return False
            raise
        finally:
            other.rollback()
    return True


def test_announced_lookups_do_not_take_the_audit_head_lock(container: Container) -> None:
    """`lock_head_next` registers the head lock with the LOCKS group: the
    lookups a batch announced (expect_locate, then locate) are sent without
    it, so the head stays free for everybody else; the next LOCKS fetch takes it."""
    require_postgresql(container)
    make_world(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        audit.lock_head_next(session)
        store = SqlQuotaStore(session)
        store.expect_locate("changsha", "cs-data-portal")
        store.expect_locate("provincial", "hn-health-hrp")
        store.locate("changsha", "cs-data-portal")
        store.locate("provincial", "hn-health-hrp")
        assert _audit_head_free(container)
        # The control: the group it belongs to does take it, in the same transaction.
        pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert not _audit_head_free(container)
    assert _audit_head_free(container)


# -- 2. the transaction memo -------------------------------------------------------


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_remembered_value_ends_with_its_transaction(container: Container, end: str) -> None:
    require_postgresql(container, "remember() keeps nothing on SQLite (nothing is deferred)")
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        session.execute(text("SELECT 1"))
        pipeline.remember(session, "t-memo", {"seq": 7})
        assert pipeline.recall(session, "t-memo") == {"seq": 7}
        session.commit() if end == "commit" else session.rollback()
        session.execute(text("SELECT 1"))  # the session's next transaction
        assert pipeline.recall(session, "t-memo") is None


@pytest.mark.parametrize(
    "savepoint", ["queued", "sent", "sqlalchemy-nested"], ids=lambda s: f"savepoint-{s}"
)
def test_a_rollback_to_any_savepoint_forgets_the_memo(container: Container, savepoint: str) -> None:
    """What was remembered before the savepoint and inside it: both gone after
    rolling back to it (the value may have been written in the part undone),
    whether the SAVEPOINT had left yet or not, or was SQLAlchemy's own."""
    require_postgresql(container, "remember() keeps nothing on SQLite (nothing is deferred)")
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        session.execute(text("SELECT 1"))
        pipeline.remember(session, "t-before", 1)
        nested = None
        if savepoint == "sqlalchemy-nested":
            nested = session.begin_nested()
            session.execute(text("SELECT 1"))
        else:
            pipeline.defer(session, savepoint_write("yg_t"))
            if savepoint == "sent":
                session.execute(text("SELECT 1"))
        pipeline.remember(session, "t-inside", 2)
        assert pipeline.recall(session, "t-before") == 1
        assert pipeline.recall(session, "t-inside") == 2
        if nested is not None:
            nested.rollback()
        else:
            pipeline.rollback_to(session, "yg_t")
        assert pipeline.recall(session, "t-before") is None
        assert pipeline.recall(session, "t-inside") is None
        session.execute(text("SELECT 1"))  # the transaction is still usable
