"""The SQL implementation of `quotas.ports.QuotaStore`, over the caller's session."""

from controlplane.quotastore.store import SqlQuotaStore

__all__ = ["SqlQuotaStore"]
