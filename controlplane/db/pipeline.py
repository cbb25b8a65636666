"""Fewer round trips to PostgreSQL while hot rows are locked.

A quota admission locks the ancestor rows that every admission of the cloud
shares, and then still has to write the grants, the request, the audit
entries and the stored Idempotency-Key answer before it commits. Every round
trip between lock and commit is paid by every writer queued on those rows
(bench/quota_http.py), so writes whose results nobody reads are not sent one
by one:

- `defer(session, write)` queues a write in the transaction (PostgreSQL);
- the next statement carries them: `fetch` sends the queue and its own query
  in one round trip, `execute_writes` the queue and its writes; any other
  statement, and the commit, first flush the queue (engine events installed
  by `install`), so a read never misses a deferred write;
- a rollback drops the queue with the transaction;
- `carry_read` registers a read to send right after the next fetch of its
  group: the audit head lock after the quota rows' lock (`fetch(...,
  carry=LOCKS)`), so the lock order holds without a round trip of its own;
  the chains a batch of filings will look up, with the first lookup
  (`carry=LOOKUPS`); `carried` hands over its rows;
- a SAVEPOINT released before anything after it was sent costs nothing: the
  pair is dropped from the queue (nobody can roll back to it any more);
- `execute_writes(..., commit=True)`, and so `UnitOfWork.commit`
  (`commit_pending`), ends the transaction in the same round trip as the
  last writes.

With all of it, an admission holds its locks for two round trips: the locks
(with the audit head), then every write and the COMMIT.

A round trip is one simple-query string (controlplane.db.script): values
bound client-side by psycopg, statements with parameters prepared once per
connection, and, when the connection has no transaction open yet, the BEGIN
first, so that it costs no round trip of its own either. The server stops at
the first failing statement; nothing after it runs, the COMMIT included.

SQLite is in-process: there is no round trip to save, so `defer` runs the
portable Core statement at once and `fetch`/`execute_writes` are plain.

Each `Write` carries its statement twice: Core (SQLite) and driver SQL with
psycopg-ready values (PostgreSQL); tests/db/test_pipeline.py checks that both
write the same rows. Errors of a statement sent here are raised as
SQLAlchemy's DBAPIError around psycopg's error (its sqlstate kept), so
`run_in_transaction` still recognises lost races.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from controlplane.db.script import Script

_QUEUE = "yunguan.deferred_writes"  # in the pooled connection's info
_READS = "yunguan.carried_reads"  # registered, not sent yet
_CARRIED = "yunguan.carried_rows"  # sent: their rows
_MEMO = "yunguan.transaction_memo"  # see `remember`
_TRANSACTION = (_READS, _CARRIED, _MEMO)  # what ends with the transaction
_CONNECTION = "yunguan.connection"  # in Session.info: see `_connection`
LOCKS = "locks"  # the carry group of reads sent with the grant rows' lock
LOOKUPS = "lookups"  # the carry group of reads sent with the first lookup of a batch
_INSTALLED: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose events flush


@dataclass(frozen=True)
class Write:
    statement: Executable | None  # Core form; None for a PostgreSQL-only write
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    pg_sql: str
    pg_params: Sequence[Sequence[Any] | Mapping[str, Any]]  # one entry per execution
    # Writes with the same key overwrite one row with its latest state (the
    # audit head): deferring one drops the previous one still queued, unless
    # a savepoint boundary lies between them (its part may be rolled back).
    latest_wins: str | None = None


_BOUNDARIES = ("SAVEPOINT ", "RELEASE SAVEPOINT ")


def _driver(conn: Connection) -> Any | None:
    if conn.dialect.name != "postgresql":
        return None
    return conn.connection.driver_connection


def _connection(session: Session) -> Connection:
    """`session.connection()`, remembered for the session's current transaction:
    this module asks for it several times per statement, and SQLAlchemy's
    answer costs more than most of what it is asked for."""
    # The innermost transaction: a nested one (begin_nested) emits its
    # SAVEPOINT only when its connection is first asked for.
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is not None:
        known = session.info.get(_CONNECTION)
        if known is not None and known[0] is transaction:
            return known[1]  # type: ignore[no-any-return]
    conn = session.connection()
    current = session.get_nested_transaction() or session.get_transaction()
    session.info[_CONNECTION] = (current, conn)
    return conn


def deferrable(session: Session) -> bool:
    """True where `defer` queues (PostgreSQL with `install`ed events)."""
    return _deferrable(_connection(session))


def _deferrable(conn: Connection) -> bool:
    # Only where `install` guarantees a flush before reads and commit; an
    # engine made elsewhere (a script, a test) gets its writes at once.
    return conn.engine in _INSTALLED


def _queue(conn: Connection) -> list[Write]:
    queue: list[Write] = conn.connection.info.setdefault(_QUEUE, [])
    return queue


def defer(session: Session, write: Write) -> None:
    conn = _connection(session)
    if not _deferrable(conn):
        _pipeline(conn, (write,), None)
        return
    queue = _queue(conn)
    if write.latest_wins is not None:
        for i in range(len(queue) - 1, -1, -1):
            if queue[i].pg_sql.startswith(_BOUNDARIES):
                break
            if queue[i].latest_wins == write.latest_wins:
                del queue[i]
                break
    queue.append(write)


@contextmanager
def _translated(sql: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        # As if SQLAlchemy had run it: callers match DBAPIError (lost races, retries).
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def _pipeline(
    conn: Connection,
    writes: Sequence[Write],
    query: tuple[str, Any] | None,
    *,
    carry: str | None = None,
    commit: bool = False,
) -> Any:
    driver = _driver(conn)
    if driver is None:
        for w in writes:
            if w.statement is None:
                raise RuntimeError("a PostgreSQL-only write cannot run on this database")
            conn.execute(w.statement, w.params)
        return None
    info = conn.connection.info
    queue = _queue(conn)
    pending = _without_released_savepoints([*queue, *writes])
    queue.clear()
    reads = _take_reads(info, carry) if carry is not None else {}
    if not pending and query is None and not commit:
        return None
    label = query[0] if query is not None else pending[0].pg_sql if pending else "COMMIT"
    idle = driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with _translated(label):
        sent = Script(driver, info)
        begin = idle and not driver.autocommit and (bool(pending) or query is not None)
        if begin:  # the BEGIN psycopg would otherwise send first, in a round trip of its own
            sent.begin()
        for w in pending:
            for params in w.pg_params:
                sent.add(w.pg_sql, params)
        at = sent.add(*query) if query is not None else None
        # After the query: see `carry_read`.
        carried_at = {key: sent.add(sql, params) for key, (_group, sql, params) in reads.items()}
        if commit and (begin or not idle):
            sent.commit()
        results = sent.run() if sent else []
        if commit:  # the transaction ended here
            _end(info)
        if carried_at:
            found = info.setdefault(_CARRIED, {})
            for key, index in carried_at.items():
                found[key] = sent.rows(results, index)
        return sent.rows(results, at) if at is not None else None


def execute_writes(session: Session, writes: Sequence[Write], *, commit: bool = False) -> None:
    """The queued writes and `writes`, in one round trip. `commit` (PostgreSQL)
    ends the transaction in that same round trip; the caller's later commit
    then has nothing left to do. SQLite leaves the commit to the caller."""
    if commit:
        session.flush()  # ORM changes first, or they would land after the COMMIT
    _pipeline(_connection(session), writes, None, commit=commit)


def commit_pending(session: Session) -> None:
    """Before `session.commit()` (UnitOfWork.commit): the writes still deferred
    and the COMMIT in one round trip, instead of a flush and then a COMMIT —
    one round trip fewer while the transaction holds its locks. Nothing to do
    without deferred writes, on SQLite, or inside a savepoint."""
    if session.get_transaction() is None or session.get_nested_transaction() is not None:
        return
    conn = _connection(session)
    if _deferrable(conn) and conn.connection.info.get(_QUEUE):
        execute_writes(session, (), commit=True)


def fetch(session: Session, sql: str, params: Any, *, carry: str | None = None) -> list[Any]:
    """PostgreSQL only: the queued writes, then `sql`, in one round trip; its
    rows. `carry`: the reads registered with `carry_read` in that group go
    too, after `sql`."""
    rows = _pipeline(_connection(session), (), (sql, params), carry=carry)
    if rows is None:
        raise RuntimeError("fetch() is for PostgreSQL connections")
    return list(rows)


def carry_read(session: Session, key: str, sql: str, params: Any, *, group: str) -> bool:
    """PostgreSQL: send `sql` right after the next `fetch(..., carry=group)`
    statement, in its round trip, and keep its rows for `carried(key)`.

    For a lock that must be taken after another one (the audit head after the
    quota rows: the global lock order) without a round trip of its own.
    False where there is nothing to gain (SQLite)."""
    conn = _connection(session)
    if not _deferrable(conn):
        return False
    conn.connection.info.setdefault(_READS, {})[key] = (group, sql, params)
    return True


def _take_reads(info: dict[Any, Any], group: str) -> dict[str, tuple[str, str, Any]]:
    registered: dict[str, tuple[str, str, Any]] = info.get(_READS, {})
    mine = {k: v for k, v in registered.items() if v[0] == group}
    for key in mine:
        del registered[key]
    return mine


def _without_released_savepoints(pending: list[Write]) -> list[Write]:
    """Drops each SAVEPOINT whose RELEASE is in the same batch of writes, and
    that RELEASE: everything between them is sent together, and once released
    the savepoint can no longer be rolled back to, so it changes nothing."""
    opened: dict[str, int] = {}
    dropped: set[int] = set()
    for i, write in enumerate(pending):
        sql = write.pg_sql
        if sql.startswith("SAVEPOINT "):
            opened[sql[len("SAVEPOINT ") :]] = i
        elif sql.startswith("RELEASE SAVEPOINT "):
            start = opened.pop(sql[len("RELEASE SAVEPOINT ") :], None)
            if start is not None:
                dropped.update((start, i))
    if not dropped:
        return pending
    return [w for i, w in enumerate(pending) if i not in dropped]


def carried(session: Session, key: str) -> list[Any] | None:
    """The rows of a carried read, or None when it was not sent (it never will be)."""
    info = _connection(session).connection.info
    info.get(_READS, {}).pop(key, None)
    rows: list[Any] | None = info.get(_CARRIED, {}).pop(key, None)
    return rows


def remember(session: Session, key: str, value: Any) -> None:
    """PostgreSQL: keep `value` — what this transaction knows of a row it holds
    locked, such as the audit head after its own last write — for `recall`
    later in the same transaction, instead of reading the row again. Dropped
    at commit, at any rollback, and at a rollback to any savepoint (the value
    may have been written in the part undone)."""
    conn = _connection(session)
    if _deferrable(conn):
        conn.connection.info.setdefault(_MEMO, {})[key] = value


def recall(session: Session, key: str) -> Any | None:
    return _connection(session).connection.info.get(_MEMO, {}).get(key)


def rollback_to(session: Session, savepoint: str) -> None:
    """ROLLBACK TO a savepoint set with a deferred `SAVEPOINT` write, dropping
    whatever was deferred since (it belongs to the part undone)."""
    conn = _connection(session)
    queue = _queue(conn)
    marker = f"SAVEPOINT {savepoint}"
    unsent = next((i for i, w in enumerate(queue) if w.pg_sql == marker), None)
    if unsent is not None:
        # The savepoint and all after it never left: drop them (and what the
        # part registered to read); what was queued before it still goes.
        del queue[unsent:]
        _end(conn.connection.info)
        return
    _forget(conn.connection.info)
    driver = _driver(conn)
    if driver is None:
        raise RuntimeError("rollback_to() is for PostgreSQL connections")
    sql = f"ROLLBACK TO SAVEPOINT {savepoint}"
    with _translated(sql):
        driver.execute(sql)


def flush(conn: Connection) -> None:
    if _driver(conn) is not None and conn.connection.info.get(_QUEUE):
        _pipeline(conn, (), None)


def install(engine: Engine) -> None:
    """Flush before any other statement and before commit; forget on rollback."""
    if engine.dialect.name != "postgresql" or engine in _INSTALLED:
        return
    _INSTALLED.add(engine)

    @event.listens_for(engine, "connect")
    def _no_driver_prepares(dbapi_conn: Any, _record: Any) -> None:
        # Our scripts PREPARE their statements (controlplane.db.script); once
        # psycopg held prepared statements of its own, its rollback() would
        # DEALLOCATE ALL, ours with them, unseen.
        dbapi_conn.prepare_threshold = None

    @event.listens_for(engine, "before_cursor_execute")
    def _before_statement(conn: Connection, *_args: Any) -> None:
        flush(conn)  # also before SAVEPOINT / ROLLBACK TO: writes land on the right side

    @event.listens_for(engine, "commit")
    def _before_commit(conn: Connection) -> None:
        flush(conn)
        _end(conn.connection.info)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        # An invalidated connection has nothing left to forget: its pool entry
        # empties `info` before it connects again (and asking for
        # `conn.connection` here would raise instead of letting the rollback end).
        if not conn.invalidated:
            _forget(conn.connection.info)

    @event.listens_for(engine, "rollback_savepoint")
    def _on_rollback_savepoint(conn: Connection, *_args: Any) -> None:
        # Everything deferred before the SAVEPOINT was flushed when it was set,
        # so what is queued now belongs to the part being undone: drop it (the
        # transaction may be in error, where sending it would fail anyway).
        if not conn.invalidated:  # see `_on_rollback`
            _forget(conn.connection.info)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, record: Any) -> None:
        _forget(record.info)  # never carry anything into another transaction


def _end(info: dict[Any, Any]) -> None:
    """Drops what a transaction registered or knew (the queue stays)."""
    for key in _TRANSACTION:
        info.pop(key, None)


def _forget(info: dict[Any, Any]) -> None:
    info.pop(_QUEUE, None)
    _end(info)
