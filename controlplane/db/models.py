"""Imports every table module so `Base.metadata` is complete (Alembic, tests)."""

from controlplane.db import tables
from controlplane.db.base import Base

metadata = Base.metadata

__all__ = ["metadata", "tables"]
