"""Persistence: SQLAlchemy tables, the engine, the unit of work and Alembic migrations.

The caller owns the transaction (a `UnitOfWork`); repositories only add,
query and flush, never commit.
"""
