"""Imports every table module so `Base.metadata` is complete (Alembic, tests)."""

from controlplane.db import (
    idempotency,
    identity_tables,
    ledger_tables,
    outbox,
    quota_tables,
    tables,
    worker_tables,
)
from controlplane.db.base import Base

metadata = Base.metadata

__all__ = [
    "idempotency",
    "identity_tables",
    "ledger_tables",
    "metadata",
    "outbox",
    "quota_tables",
    "tables",
    "worker_tables",
]
