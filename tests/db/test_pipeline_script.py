"""How controlplane.db.pipeline's round trips are sent (controlplane.db.script),
on PostgreSQL:

- a statement with parameters is PREPAREd once per database connection and
  then EXECUTEd: across transactions, checkin and checkout, and a rollback
  (PREPARE is not transactional), not again after a reconnect, not recorded
  when the server never ran it (a statement before it failed);
- values round-trip as psycopg binds and loads them (NULL, json, arrays,
  timestamps, numerics, quotes), `%%` is a %;
- errors keep their sqlstate, and a lost race is still retried;
- the per-connection bound on prepared statements deallocates the least
  recently used ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Json
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import pipeline, script
from controlplane.db.engine import make_session_factory
from controlplane.db.retry import run_in_transaction
from controlplane.db.uow import UnitOfWork
from tests.db.pipeline_probe import (  # noqa: F401 - sent is a fixture
    Sent,
    require_postgresql,
    sent,
)

_QUERY = "SELECT last_seq, last_hash FROM audit_head WHERE id = %(id)s"
_LOCK = "SELECT last_seq FROM audit_head WHERE id = %s FOR UPDATE"


@pytest.fixture
def pg(container: Container) -> Container:
    require_postgresql(container, "scripts and prepared statements are PostgreSQL's")
    return container


def _driver(session: Session) -> Any:
    return session.connection().connection.driver_connection


def _server_prepared(session: Session) -> set[str]:
    rows = session.execute(text("SELECT name FROM pg_prepared_statements"))
    return {name for (name,) in rows if name.startswith("yg_")}


def _head(session: Session) -> list[Any]:
    return pipeline.fetch(session, _QUERY, {"id": 1})


# -- 1. prepared once per connection ------------------------------------------------


def test_a_statement_is_prepared_once_per_connection(pg: Container, sent: Sent) -> None:
    """The first use sends BEGIN, PREPARE and EXECUTE in one round trip; later
    transactions on the same pooled connection (checked in and out between
    them), one of them rolled back, only EXECUTE."""
    with UnitOfWork(pg.session_factory) as uow:
        driver = _driver(uow.session)
        assert [r.last_seq for r in _head(uow.session)] == [0]
        assert len(sent.scripts) == 1
        parts = sent.scripts[0][1]
        assert parts[0] == "BEGIN" and parts[1].startswith("PREPARE yg_"), parts
        assert parts[2].startswith("EXECUTE yg_"), parts
        assert sent.on(driver) == [_QUERY]
        uow.rollback()  # PREPARE is not undone by a rollback
    sent.clear()
    for _ in range(2):
        with UnitOfWork(pg.session_factory) as uow:
            assert _driver(uow.session) is driver  # the same pooled connection
            assert [r.last_seq for r in _head(uow.session)] == [0]
            uow.commit()
    assert sent.parts_on(driver, "PREPARE ") == []
    assert len(sent.parts_on(driver, "EXECUTE ")) == 2


def test_a_reconnected_connection_prepares_again(pg: Container, sent: Sent) -> None:
    """What a connection prepared lives in its pool entry's info, which the
    pool empties when it replaces the DBAPI connection."""
    with UnitOfWork(pg.session_factory) as uow:
        first = _driver(uow.session)
        _head(uow.session)
        uow.session.connection().invalidate()
    with UnitOfWork(pg.session_factory) as uow:
        second = _driver(uow.session)
        sent.clear()
        assert [r.last_seq for r in _head(uow.session)] == [0]
    assert second is not first
    assert len(sent.parts_on(second, "PREPARE ")) == 1


def test_a_prepare_after_a_failing_statement_is_not_recorded(pg: Container, sent: Sent) -> None:
    """The server skips the rest of a script after an error: a PREPARE there
    never ran, so the next use sends it again (and works); a PREPARE that ran
    before the error stays recorded."""
    failing = pipeline.Write(None, {}, "SELECT 1 / %s", [(0,)])  # prepared, then fails
    with UnitOfWork(pg.session_factory) as uow:
        driver = _driver(uow.session)
        pipeline.defer(uow.session, failing)
        with pytest.raises(DBAPIError) as raised:
            _head(uow.session)
        assert raised.value.orig.sqlstate == "22012"  # type: ignore[union-attr]
        assert len(sent.parts_on(driver, "PREPARE ")) == 2
        uow.rollback()
        assert _server_prepared(uow.session) == {_name("SELECT 1 / %s")}
    sent.clear()
    with UnitOfWork(pg.session_factory) as uow:
        assert _driver(uow.session) is driver
        assert [r.last_seq for r in _head(uow.session)] == [0]
        with pytest.raises(DBAPIError):
            pipeline.execute_writes(uow.session, [failing])
        assert sent.parts_on(driver, "PREPARE ") == [_prepare(_QUERY)]


def _name(sql: str) -> str:
    return script._form(sql).name.decode()


def _prepare(sql: str) -> str:
    return script._form(sql).prepare.decode()


@pytest.mark.parametrize("lost", ["server", "client"])
def test_prepared_names_converge_when_server_and_client_disagree(
    pg: Container, sent: Sent, lost: str
) -> None:
    """Statements deallocated behind the script's back (a DEALLOCATE ALL on
    the connection), or names forgotten while still prepared: the one
    transaction that finds out fails (26000, 42P05), the next ones work."""
    with UnitOfWork(pg.session_factory) as uow:
        driver = _driver(uow.session)
        _head(uow.session)
        uow.commit()
    with UnitOfWork(pg.session_factory) as uow:
        if lost == "server":
            uow.session.execute(text("DEALLOCATE ALL"))
        else:
            uow.session.connection().connection.info[script._STATE].prepared.clear()
        with pytest.raises(DBAPIError) as raised:
            _head(uow.session)
        assert raised.value.orig.sqlstate == ("26000" if lost == "server" else "42P05")  # type: ignore[union-attr]
    for _ in range(2):
        with UnitOfWork(pg.session_factory) as uow:
            assert _driver(uow.session) is driver
            assert [r.last_seq for r in _head(uow.session)] == [0]
    # The first; then again after the DEALLOCATE ALL, or the one that failed.
    assert sent.parts_on(driver, "PREPARE ") == [_prepare(_QUERY)] * 2


def test_a_write_of_several_parameter_sets_executes_once_per_set(pg: Container, sent: Sent) -> None:
    sql = (
        "INSERT INTO outbox (topic, aggregate_type, aggregate_id, payload, created_at) "
        "VALUES (%s, 't', %s, %s, now())"
    )
    sets = [(f"t{i}", str(i), Json({"i": i})) for i in range(3)]
    with UnitOfWork(pg.session_factory) as uow:
        driver = _driver(uow.session)
        pipeline.execute_writes(uow.session, [pipeline.Write(None, {}, sql, sets)], commit=True)
    assert sent.parts_on(driver, "PREPARE ") == [_prepare(sql)]
    assert len(sent.parts_on(driver, "EXECUTE ")) == 3 and len(sent.scripts) == 1
    with UnitOfWork(pg.session_factory) as uow:
        rows = uow.session.execute(text("SELECT topic, payload FROM outbox ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(f"t{i}", {"i": i}) for i in range(3)]


def test_least_recently_used_statements_are_deallocated_beyond_the_bound(
    pg: Container, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bound a script ends by deallocating the least recently used
    statements (after the COMMIT, if any: DEALLOCATE is not transactional)."""
    monkeypatch.setattr(script, "MAX_PREPARED", 2)
    queries = [f"SELECT %s::int + {i} AS n" for i in range(3)]

    def fetch(session: Session, sql: str) -> None:
        assert [r.n for r in pipeline.fetch(session, sql, (1,))] == [1 + queries.index(sql)]

    with UnitOfWork(pg.session_factory) as uow:
        driver = _driver(uow.session)
        fetch(uow.session, queries[0])
        fetch(uow.session, queries[1])
        fetch(uow.session, queries[0])  # now the more recently used
        fetch(uow.session, queries[2])
        assert sent.scripts[-1][1][-1] == f"DEALLOCATE {_name(queries[1])}"
        assert _server_prepared(uow.session) == {_name(queries[0]), _name(queries[2])}
        pipeline.execute_writes(
            uow.session, [pipeline.Write(None, {}, queries[1], [(1,)])], commit=True
        )
        assert sent.scripts[-1][1][-2:] == ["COMMIT", f"DEALLOCATE {_name(queries[0])}"]
        assert _server_prepared(uow.session) == {_name(queries[1]), _name(queries[2])}
    prepares = [_prepare(sql) for sql in [queries[0], queries[1], queries[2], queries[1]]]
    assert sent.parts_on(driver, "PREPARE ") == prepares


def test_an_engine_without_install_writes_values_into_the_statements(
    pg: Container, sent: Sent
) -> None:
    """Where psycopg may prepare statements of its own (its rollback would
    then DEALLOCATE ALL), nothing is prepared: the values go inline."""
    engine = create_engine(pg.engine.url)
    try:
        with UnitOfWork(make_session_factory(engine)) as uow:
            assert [r.last_seq for r in _head(uow.session)] == [0]
            assert [p for _, parts in sent.scripts for p in parts] == [
                "BEGIN",
                "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
            ]
    finally:
        engine.dispose()


# -- 2. values -----------------------------------------------------------------


def test_percent_signs(pg: Container) -> None:
    """As psycopg: with parameters `%%` is a %, without them it is sent as is."""
    with UnitOfWork(pg.session_factory) as uow:
        rows = pipeline.fetch(uow.session, "SELECT 'a%%b' AS v, %s::int AS n", (7,))
        assert (rows[0].v, rows[0].n) == ("a%b", 7)
        assert pipeline.fetch(uow.session, "SELECT 'a%%b' AS v", None)[0].v == "a%%b"
        assert pipeline.fetch(uow.session, "SELECT 'a%%b' AS v", ())[0].v == "a%b"


_VALUES: dict[str, Any] = {
    "null": None,
    "json": Json({"a": [1, "two", None], "q": "it's"}),
    "ints": [1, 2, 70000],
    "texts": ["a", "b'c", 'd"e', "f\\g", ""],
    "at": datetime(2026, 11, 28, 12, 30, 1, 123456, tzinfo=UTC),
    "num": Decimal("12.340"),
    "big": 2**62,
    "neg": -5,
    "text": "x'; DROP TABLE audit_head; --\\",
    "flag": True,
}
_TYPED = (
    "SELECT %(null)s::int AS null, %(json)s::jsonb AS json, %(ints)s::int8[] AS ints, "
    "%(texts)s::text[] AS texts, %(at)s::timestamptz AS at, %(num)s::numeric AS num, "
    "%(big)s::int8 AS big, %(neg)s::int AS neg, %(text)s::text AS text, %(flag)s::bool AS flag"
)


def test_values_round_trip_as_psycopg_binds_and_loads_them(pg: Container) -> None:
    """The same row, types included, as a psycopg cursor gets for the same
    statement (with its own server-side binding)."""
    with pg.engine.connect() as other:
        raw: Any = other.connection.driver_connection
        expected = raw.execute(_TYPED, _VALUES).fetchone()
        other.rollback()
    for _ in range(2):  # prepared, then executed again
        with UnitOfWork(pg.session_factory) as uow:
            (row,) = pipeline.fetch(uow.session, _TYPED, _VALUES)
        assert tuple(row) == tuple(expected)
        assert [type(v) for v in row] == [type(v) for v in expected]
        assert row.json == {"a": [1, "two", None], "q": "it's"} and row.at == _VALUES["at"]


# -- 3. errors -----------------------------------------------------------------


def test_a_unique_violation_keeps_its_sqlstate(pg: Container) -> None:
    duplicate = pipeline.Write(
        None,
        {},
        "INSERT INTO audit_head (id, last_seq, last_hash) VALUES (%s, %s, %s)",
        [(1, 0, "x")],
    )
    with UnitOfWork(pg.session_factory) as uow:
        with pytest.raises(DBAPIError) as raised:
            pipeline.execute_writes(uow.session, [duplicate], commit=True)
        assert isinstance(raised.value.orig, psycopg.errors.UniqueViolation)
        assert raised.value.orig.sqlstate == "23505"
        uow.rollback()
        assert [r.last_seq for r in _head(uow.session)] == [0]  # the connection still works


@pytest.fixture
def head_locked(pg: Container) -> Iterator[Connection]:
    """The audit head row locked from another connection until released."""
    with pg.engine.connect() as other:
        other.execute(text("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE"))
        yield other
        other.rollback()


def _lock_head_quickly(session: Session) -> list[Any]:
    session.execute(text("SET LOCAL lock_timeout = '50ms'"))
    return pipeline.fetch(session, _LOCK, (1,))


def test_a_lock_timeout_keeps_its_sqlstate(pg: Container, head_locked: Connection) -> None:
    with UnitOfWork(pg.session_factory) as uow:
        with pytest.raises(DBAPIError) as raised:
            _lock_head_quickly(uow.session)
        assert isinstance(raised.value.orig, psycopg.errors.LockNotAvailable)
        assert raised.value.orig.sqlstate == "55P03"


def test_a_lost_race_is_retried(pg: Container, head_locked: Connection) -> None:
    attempts = []

    def work(session: Session) -> int:
        attempts.append(1)
        if len(attempts) == 2:
            head_locked.rollback()  # the other transaction ends: the retry gets the lock
        return int(_lock_head_quickly(session)[0].last_seq)

    assert run_in_transaction(pg.session_factory, work) == 0
    assert len(attempts) == 2
