"""Helpers shared by the tests of controlplane.db.pipeline's batching
(tests/db/test_pipeline_*.py, test_id_blocks.py, test_locate_hints.py).

What is sent is observed by wrapping controlplane.db.script (`Script.add`:
each statement with its parameters; `send`: each script, one round trip,
with every part of it, the BEGIN, PREPARE and COMMIT it adds included) and
psycopg's `Cursor.execute` and `executemany` (what SQLAlchemy and psycopg
send outside of scripts): the `sent` fixture. A test module uses it by
importing it by name (`from tests.db.pipeline_probe import sent  # noqa:
F401`). Tests that look at what is sent run on PostgreSQL only (SQLite has no
deferred writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import pipeline, script

PG_ONLY = "PostgreSQL only: SQLite runs every write at once (no deferred writes to batch)"


def require_postgresql(container: Container, reason: str = PG_ONLY) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip(reason)


@dataclass
class Sent:
    """What was sent while the test recorded: (driver connection, SQL,
    parameters) per statement asked for, and each script (one round trip):
    (driver connection, its parts as sent)."""

    statements: list[tuple[Any, str, Any]] = field(default_factory=list)
    scripts: list[tuple[Any, list[str]]] = field(default_factory=list)

    def clear(self) -> None:
        self.statements.clear()
        self.scripts.clear()

    def on(self, driver: Any) -> list[str]:
        """The SQL sent on one driver connection, in order."""
        return [sql for conn, sql, _ in self.statements if conn is driver]

    def params_of(self, driver: Any, prefix: str) -> list[Any]:
        return [p for conn, sql, p in self.statements if conn is driver and sql.startswith(prefix)]

    def parts_on(self, driver: Any, prefix: str) -> list[str]:
        """The parts of the scripts sent on one connection that start with
        `prefix` (such as "PREPARE ")."""
        return [
            p
            for conn, parts in self.scripts
            if conn is driver
            for p in parts
            if p.startswith(prefix)
        ]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    log = Sent()
    execute = psycopg.Cursor.execute
    executemany = psycopg.Cursor.executemany
    add = script.Script.add
    send = script.send

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

    def recording_add(self: script.Script, sql: str, params: Any) -> int:
        log.statements.append((self.driver, sql, params))
        return add(self, sql, params)

    def recording_send(driver: Any, parts: Any) -> Any:
        log.scripts.append((driver, [p.decode() for p in parts]))
        return send(driver, parts)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording_execute)
    monkeypatch.setattr(psycopg.Cursor, "executemany", recording_executemany)
    monkeypatch.setattr(script.Script, "add", recording_add)
    monkeypatch.setattr(script, "send", recording_send)
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
