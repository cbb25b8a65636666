"""Engine and session factory for PostgreSQL (production) and SQLite (embedded)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db import pipeline
from controlplane.settings import PoolSettings


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while the worker writes; foreign keys are off by
    # default in SQLite; the busy timeout turns writer contention into waiting.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # pysqlite defers BEGIN until the first write, so two transactions can both
    # read and then fail to upgrade their lock ("database is locked"). Taking the
    # write lock at BEGIN serialises writers up front, which is what we want.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False, pool: PoolSettings | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        # Take transaction control away from pysqlite (SQLAlchemy's documented recipe).
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    pool = pool or PoolSettings()
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout_s,
    )
    _ping_when_idle(engine)
    pipeline.install(engine)  # deferred writes (controlplane.db.pipeline)
    return engine


IDLE_PING_S = 5.0
_CHECKED_IN = "yunguan.checked_in"


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's `pool_pre_ping`, but only for a connection that sat idle in
    the pool for `IDLE_PING_S` or more: that is when a server restart or a
    firewall's idle timeout can have killed it unseen. A connection back from
    use moments ago is known to work, and a ping per checkout was a round
    trip (and its CPU) before every transaction. A dead connection found here
    is replaced transparently (DisconnectionError makes the pool reconnect);
    one that dies in the few seconds between uses fails its transaction once,
    as with any connection that breaks mid-use."""

    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi_conn: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_CHECKED_IN)
        if last is not None and time.monotonic() - last < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_conn, None):
                raise DisconnectionError(str(exc)) from exc
            raise


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
