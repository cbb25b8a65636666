"""Shared fixtures: real databases on both backends.

Every DB test runs twice, on an SQLite file and on the real PostgreSQL server
(`YUNGUAN_TEST_POSTGRES_URL`, an admin URL; the suite creates and drops its own
throwaway databases there). A missing PostgreSQL fails the run: a skip must
never hide a broken testbed. Tables are emptied after each test rather than
rolled back, because the code under test commits its own units of work (and
later stages race real transactions against each other).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from controlplane.bootstrap import Container
from controlplane.db.engine import make_engine, make_session_factory
from controlplane.db.migrate import upgrade
from controlplane.db.models import metadata
from controlplane.identity.audit import GENESIS
from controlplane.settings import Mode, Settings
from tests.secrets_scan import KNOWN_SECRETS, CaptureAll, leaks, register_secret

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "hunan.yaml"
BACKENDS = ["sqlite", "postgresql"]
_backend_counts: Counter[str] = Counter()
_LOG_CAPTURE = CaptureAll()
TEST_SECRET_KEY = register_secret("test-secret-key-" + uuid.uuid4().hex)


def postgres_admin_url() -> str:
    return os.environ.get(
        "YUNGUAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )


class ThrowawayDatabases:
    """Creates fresh, empty databases on a backend and drops them at the end."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._pg_admin: Engine | None = None
        self._pg_names: list[str] = []

    def new_url(self, backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self._tmp / f'yunguan-{uuid.uuid4().hex[:8]}.db'}"
        if self._pg_admin is None:
            self._pg_admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
            try:
                with self._pg_admin.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:
                pytest.fail(
                    f"PostgreSQL is not reachable at {postgres_admin_url()} "
                    f"({exc.__class__.__name__}); run scripts/testbed/postgres.sh up",
                    pytrace=False,
                )
        name = f"yg_test_{uuid.uuid4().hex[:12]}"
        with self._pg_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self._pg_names.append(name)
        return (
            make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
        )

    def close(self) -> None:
        if self._pg_admin is None:
            return
        with self._pg_admin.connect() as conn:
            for name in self._pg_names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._pg_admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayDatabases]:
    dbs = ThrowawayDatabases(tmp_path_factory.mktemp("db"))
    yield dbs
    dbs.close()


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest, databases: ThrowawayDatabases) -> str:
    """One database per backend for the whole session, migrated to head."""
    url = databases.new_url(request.param)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def count_backend(name: str) -> None:
    """Records that a test ran on `name`, for the summary line."""
    _backend_counts[name] += 1


@pytest.fixture
def backend(migrated_url: str) -> str:
    name = make_url(migrated_url).get_backend_name()
    count_backend(name)
    return name


def _empty_all_tables(engine: Engine) -> None:
    tables = [t.name for t in metadata.sorted_tables]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            _reseed(conn)
        return
    # SQLite checks self-references (org_nodes.parent_id) row by row; switch
    # the checks off on this one raw connection, outside any transaction.
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")
        for name in reversed(tables):
            cur.execute(f"DELETE FROM {name}")
        raw.commit()
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()
    with engine.begin() as conn:
        _reseed(conn)


def _reseed(conn: Connection) -> None:
    """Rows the migrations seed and the code relies on (the audit chain's head)."""
    conn.execute(
        text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, :h)"),
        {"h": GENESIS},
    )


@pytest.fixture
def container(migrated_url: str, backend: str, tmp_path: Path) -> Iterator[Container]:
    settings = Settings(
        mode=Mode.DEV, database_url=migrated_url, data_dir=tmp_path, secret_key=TEST_SECRET_KEY
    )
    engine = make_engine(migrated_url)
    _empty_all_tables(engine)  # whatever an earlier test left, this one starts clean
    c = Container(settings=settings, engine=engine, session_factory=make_session_factory(engine))
    try:
        yield c
    finally:
        _empty_all_tables(engine)
        engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_LOG_CAPTURE)
    root.setLevel(logging.DEBUG)
    # SQL echo at DEBUG would flood the capture; statements carry no secrets
    # by design (only digests), and their own tests cover that.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = leaks(_LOG_CAPTURE.lines, KNOWN_SECRETS)
    if found:
        for secret, line in found[:10]:
            print(f"\nSECRET LEAKED INTO LOGS: {secret} in: {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(
        f"log scan: {len(_LOG_CAPTURE.lines)} log records checked for "
        f"{len(KNOWN_SECRETS)} known secrets: "
        + ("LEAK FOUND" if leaks(_LOG_CAPTURE.lines, KNOWN_SECRETS) else "none leaked")
    )
    if _backend_counts:
        ran = ", ".join(f"{name}: {n} tests" for name, n in sorted(_backend_counts.items()))
        terminalreporter.write_line(f"database backends exercised: {ran}")
