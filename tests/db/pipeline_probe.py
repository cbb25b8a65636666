"""Helpers shared by the tests of controlplane.db.pipeline's batching
(tests/db/test_pipeline_*.py, test_id_blocks.py, test_locate_hints.py).

What is sent is observed by wrapping psycopg's `Cursor.execute` (and
`executemany`, and `Connection.pipeline` for the round trips): the `sent`
fixture. A test module uses it by importing it by name
(`from tests.db.pipeline_probe import sent  # noqa: F401`). Tests that look at
what is sent run on PostgreSQL only (SQLite has no deferred writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import pipeline

PG_ONLY = "PostgreSQL only: SQLite runs every write at once (no deferred writes to batch)"


def require_postgresql(container: Container, reason: str = PG_ONLY) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip(reason)


@dataclass
class Sent:
    """What psycopg was asked to run while the test recorded: (driver
    connection, SQL, parameters) per execution, and each pipeline (one
    round trip) opened."""

    statements: list[tuple[Any, str, Any]] = field(default_factory=list)
    pipelines: list[Any] = field(default_factory=list)

    def clear(self) -> None:
        self.statements.clear()
        self.pipelines.clear()

    def on(self, driver: Any) -> list[str]:
        """The SQL sent on one driver connection, in order."""
        return [sql for conn, sql, _ in self.statements if conn is driver]

    def params_of(self, driver: Any, prefix: str) -> list[Any]:
        return [p for conn, sql, p in self.statements if conn is driver and sql.startswith(prefix)]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    log = Sent()
    execute = psycopg.Cursor.execute
    executemany = psycopg.Cursor.executemany
    open_pipeline = psycopg.Connection.pipeline

    def _sql(query: Any) -> str:
        if isinstance(query, bytes):
            return query.decode()
        return query if isinstance(query, str) else repr(query)

    def recording_execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        log.statements.append((self.connection, _sql(query), params))
        return execute(self, query, params, **kw)

    def recording_executemany(self: Any, query: Any, params_seq: Any, **kw: Any) -> Any:
        params_seq = list(params_seq)
        for params in params_seq:
            log.statements.append((self.connection, _sql(query), params))
        return executemany(self, query, params_seq, **kw)

    def recording_pipeline(self: Any, *args: Any, **kw: Any) -> Any:
        log.pipelines.append(self)
        return open_pipeline(self, *args, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording_execute)
    monkeypatch.setattr(psycopg.Cursor, "executemany", recording_executemany)
    monkeypatch.setattr(psycopg.Connection, "pipeline", recording_pipeline)
    return log


def driver_of(session: Session) -> Any:
    """The session's psycopg connection (its transaction begun)."""
    session.execute(text("SELECT 1"))
    return session.connection().connection.driver_connection


def savepoint_write(name: str) -> pipeline.Write:
    # As controlplane.db.combine._Savepoint defers it; the Core form lets the
    # same test run on SQLite, where `defer` executes at once.
    return pipeline.Write(text(f"SAVEPOINT {name}"), {}, f"SAVEPOINT {name}", [()])


def release_write(name: str) -> pipeline.Write:
    sql = f"RELEASE SAVEPOINT {name}"
    return pipeline.Write(text(sql), {}, sql, [()])
