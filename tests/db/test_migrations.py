"""Every Alembic revision walks up and down, and the models match the migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from controlplane.db import migrate
from controlplane.db.engine import make_engine
from controlplane.db.models import metadata
from tests.conftest import BACKENDS, ThrowawayDatabases, count_backend


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_walk_every_revision_up_and_down(databases: ThrowawayDatabases, backend_name: str) -> None:
    count_backend(backend_name)
    engine = make_engine(databases.new_url(backend_name))
    try:
        revisions = migrate.revisions_base_to_head()
        assert revisions[-1] == migrate.head_revision()
        for rev in revisions:
            migrate.upgrade(engine, rev)
            assert migrate.current_revision(engine) == rev
        for rev in reversed(revisions[:-1]):
            migrate.downgrade(engine, rev)
            assert migrate.current_revision(engine) == rev
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert migrate.is_at_head(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_models_match_migrations(databases: ThrowawayDatabases, backend_name: str) -> None:
    count_backend(backend_name)
    engine = make_engine(databases.new_url(backend_name))
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, metadata)
        assert diff == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_downgrade_and_upgrade_with_data(databases: ThrowawayDatabases, backend_name: str) -> None:
    """Batch rebuilds on SQLite must survive referenced rows (foreign keys on)."""
    from controlplane.db.engine import make_session_factory
    from controlplane.db.uow import UnitOfWork
    from controlplane.identity.store import IdentityStore
    from controlplane.topology.apply import apply_topology
    from controlplane.topology.document import load_document
    from tests.conftest import SAMPLE

    count_backend(backend_name)
    engine = make_engine(databases.new_url(backend_name))
    try:
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
        apply_topology(factory, load_document(SAMPLE), source="sample")
        with UnitOfWork(factory) as uow:
            IdentityStore(uow.session).create_user("u", "u", "cs-data")
            uow.commit()
        revisions = migrate.revisions_base_to_head()
        for rev in reversed(revisions[:-1]):
            migrate.downgrade(engine, rev)
        migrate.downgrade(engine, "base")
        migrate.upgrade(engine)
        assert migrate.is_at_head(engine)
    finally:
        engine.dispose()
