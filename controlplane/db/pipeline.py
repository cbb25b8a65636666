"""Fewer round trips to PostgreSQL while hot rows are locked.

A quota admission locks the ancestor rows that every admission of the cloud
shares, and then still has to write the grants, the request, the audit
entries and the stored Idempotency-Key answer before it commits. Every round
trip between lock and commit is paid by every writer queued on those rows
(bench/quota_http.py), so writes whose results nobody reads are not sent one
by one:

- `defer(session, write)` queues a write in the transaction (PostgreSQL);
- the next statement carries them: `fetch` sends the queue and its own query
  in one psycopg pipeline, `execute_writes` the queue and its writes; any
  other statement, and the commit, first flush the queue (engine events
  installed by `install`), so a read never misses a deferred write;
- a rollback drops the queue with the transaction.

SQLite is in-process: there is no round trip to save, so `defer` runs the
portable Core statement at once and `fetch`/`execute_writes` are plain.

Each `Write` carries its statement twice: Core (SQLite) and driver SQL with
psycopg-ready values (PostgreSQL); tests/db/test_pipeline.py checks that both
write the same rows. Errors of a pipelined statement are raised as
SQLAlchemy's DBAPIError, so `run_in_transaction` still recognises lost races.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

_QUEUE = "yunguan.deferred_writes"  # in the pooled connection's info
_INSTALLED: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose events flush


@dataclass(frozen=True)
class Write:
    statement: Executable | None  # Core form; None for a PostgreSQL-only write
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    pg_sql: str
    pg_params: Sequence[Sequence[Any] | Mapping[str, Any]]  # one entry per execution


def _driver(conn: Connection) -> Any | None:
    if conn.dialect.name != "postgresql":
        return None
    return conn.connection.driver_connection


def _deferrable(conn: Connection) -> bool:
    # Only where `install` guarantees a flush before reads and commit; an
    # engine made elsewhere (a script, a test) gets its writes at once.
    return conn.engine in _INSTALLED


def _queue(conn: Connection) -> list[Write]:
    queue: list[Write] = conn.connection.info.setdefault(_QUEUE, [])
    return queue


def defer(session: Session, write: Write) -> None:
    conn = session.connection()
    if not _deferrable(conn):
        _pipeline(conn, (write,), None)
        return
    _queue(conn).append(write)


def _send(cur: Any, writes: Sequence[Write]) -> None:
    for w in writes:
        if len(w.pg_params) == 1:
            cur.execute(w.pg_sql, w.pg_params[0])
        else:
            cur.executemany(w.pg_sql, w.pg_params)


@contextmanager
def _translated(sql: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        # As if SQLAlchemy had run it: callers match DBAPIError (lost races, retries).
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def _pipeline(conn: Connection, writes: Sequence[Write], query: tuple[str, Any] | None) -> Any:
    driver = _driver(conn)
    if driver is None:
        for w in writes:
            if w.statement is None:
                raise RuntimeError("a PostgreSQL-only write cannot run on this database")
            conn.execute(w.statement, w.params)
        return None
    queue = _queue(conn)
    pending = [*queue, *writes]
    queue.clear()
    if not pending and query is None:
        return None
    label = query[0] if query is not None else pending[0].pg_sql
    idle = driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if not pending and query is not None and not idle:
        # Nothing to carry: a plain statement. (The first statement of a
        # transaction goes through the pipeline: BEGIN travels with it there,
        # instead of costing a round trip of its own.)
        with _translated(label):
            return driver.cursor(row_factory=namedtuple_row).execute(*query).fetchall()
    with _translated(label), driver.pipeline():
        with driver.cursor() as cur:
            _send(cur, pending)
        if query is None:
            return None
        reader = driver.cursor(row_factory=namedtuple_row)
        reader.execute(query[0], query[1])
    # The pipeline has synced on leaving the block: the rows are here.
    with _translated(label):
        return reader.fetchall()


def execute_writes(session: Session, writes: Sequence[Write]) -> None:
    """The queued writes and `writes`, in one round trip."""
    _pipeline(session.connection(), writes, None)


def fetch(session: Session, sql: str, params: Any) -> list[Any]:
    """PostgreSQL only: the queued writes, then `sql`, in one round trip; its rows."""
    rows = _pipeline(session.connection(), (), (sql, params))
    if rows is None:
        raise RuntimeError("fetch() is for PostgreSQL connections")
    return list(rows)


def flush(conn: Connection) -> None:
    if _driver(conn) is not None and conn.connection.info.get(_QUEUE):
        _pipeline(conn, (), None)


def install(engine: Engine) -> None:
    """Flush before any other statement and before commit; forget on rollback."""
    if engine.dialect.name != "postgresql" or engine in _INSTALLED:
        return
    _INSTALLED.add(engine)

    @event.listens_for(engine, "before_cursor_execute")
    def _before_statement(conn: Connection, *_args: Any) -> None:
        flush(conn)  # also before SAVEPOINT / ROLLBACK TO: writes land on the right side

    @event.listens_for(engine, "commit")
    def _before_commit(conn: Connection) -> None:
        flush(conn)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        if conn.connection.info.get(_QUEUE):
            conn.connection.info[_QUEUE].clear()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, record: Any) -> None:
        record.info.pop(_QUEUE, None)  # never carry writes into another transaction
