"""The pool pings a PostgreSQL connection only after it sat idle
(controlplane.db.engine): a connection the server killed meanwhile is replaced
unseen, and a connection back from use moments ago is not pinged."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from controlplane.bootstrap import Container
from controlplane.db import engine as engine_module
from controlplane.db.uow import UnitOfWork


def _backend_pid(container: Container) -> int:
    with UnitOfWork(container.session_factory) as uow:
        return int(uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_killed_while_idle_is_replaced(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("the idle ping is PostgreSQL's (SQLite has no server to lose)")
    first = _backend_pid(container)
    killer = create_engine(container.engine.url)  # not from the pool under test
    with killer.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    killer.dispose()
    monkeypatch.setattr(engine_module, "IDLE_PING_S", 0.0)  # every checkout counts as idle
    assert _backend_pid(container) != first  # a new connection, no error


def test_a_connection_back_from_use_is_not_pinged(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("the idle ping is PostgreSQL's")
    pings: list[object] = []
    real = container.engine.dialect.do_ping

    def counting(dbapi_conn: object) -> bool:
        pings.append(dbapi_conn)
        return real(dbapi_conn)

    monkeypatch.setattr(container.engine.dialect, "do_ping", counting)
    _backend_pid(container)
    _backend_pid(container)  # checked in a moment ago: no ping
    assert len(pings) <= 1  # at most the first checkout (a fresh or idle connection)
