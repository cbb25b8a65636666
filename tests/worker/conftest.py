"""Worker tests with real processes run on PostgreSQL, the production database
(SQLite is covered by the in-process task-body tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.bootstrap import Container
from controlplane.db.engine import make_engine, make_session_factory
from controlplane.db.migrate import upgrade
from controlplane.settings import Mode, Settings
from tests.conftest import TEST_SECRET_KEY, ThrowawayDatabases, count_backend


@pytest.fixture
def pg_container(databases: ThrowawayDatabases, tmp_path: Path) -> Iterator[Container]:
    url = databases.new_url("postgresql")
    engine = make_engine(url)
    upgrade(engine)
    count_backend("postgresql")
    settings = Settings(
        mode=Mode.DEV, database_url=url, data_dir=tmp_path, secret_key=TEST_SECRET_KEY
    )
    yield Container(settings=settings, engine=engine, session_factory=make_session_factory(engine))
    engine.dispose()
