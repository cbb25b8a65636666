"""Imports every table module so `Base.metadata` is complete (Alembic, tests)."""

from controlplane.db import identity_tables, tables
from controlplane.db.base import Base

metadata = Base.metadata

__all__ = ["identity_tables", "metadata", "tables"]
