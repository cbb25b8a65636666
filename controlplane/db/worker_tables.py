"""ORM tables of provisioning and reconciliation: what the workers did and saw.

- `operations`: one record per provisioning step, visible to users;
- `cloud_tenants`: which provider tenant realises a project on a cloud;
- `quota_observations`: the provider's limit per tenant and class, and drift
  (in-use goes to the quota ledger's `quota_usage`);
- `capacity_observations`: capacity per cloud, class and architecture;
- `sync_status`: per cloud and sync kind, when it last succeeded and how it went.

Observations are what providers report: stored for reconciliation, drift and
metrics, never the enforcement source (the grant ledger is).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db.base import Base, UtcDateTime, utcnow

_OP_STATUS = "'pending', 'running', 'succeeded', 'failed', 'superseded'"


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_OP_STATUS})", name="status"),
        Index("ix_operations_target", "cloud_id", "node_id", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # provision, apply_scope, retire
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"))
    # A project; for Slurm also a prefecture or department (its parent account).
    node_id: Mapped[int] = mapped_column(ForeignKey("org_nodes.id", ondelete="CASCADE"))
    scope_path: Mapped[str] = mapped_column(String(255), index=True)
    target_generation: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(32))  # event, drift, retry, manual
    source_event_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A running attempt holds the operation until its lease ends; a worker killed
    # mid-call loses it then, and the redelivered message takes over.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))


class CloudTenant(Base):
    __tablename__ = "cloud_tenants"
    __table_args__ = (UniqueConstraint("cloud_id", "node_id", name="uq_cloud_tenants_cloud_node"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"))
    node_id: Mapped[int] = mapped_column(ForeignKey("org_nodes.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(255))
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    applied_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    ensured_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class QuotaObservation(Base):
    __tablename__ = "quota_observations"
    __table_args__ = (
        UniqueConstraint(
            "cloud_id", "project_id", "resource_class", name="uq_quota_observations_key"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("org_nodes.id", ondelete="CASCADE"))
    resource_class: Mapped[str] = mapped_column(String(32))
    limit: Mapped[int | None] = mapped_column(BigInteger)  # None: unlimited at the provider
    granted: Mapped[int | None] = mapped_column(BigInteger)  # what Yunguan wanted then
    drift: Mapped[bool] = mapped_column(Boolean, default=False)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CapacityObservation(Base):
    __tablename__ = "capacity_observations"
    __table_args__ = (
        UniqueConstraint(
            "cloud_id", "resource_class", "architecture", name="uq_capacity_observations_key"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"))
    resource_class: Mapped[str] = mapped_column(String(32))
    architecture: Mapped[str] = mapped_column(String(16))  # "" where none applies
    total: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)
    allocation_ratio: Mapped[float] = mapped_column(Float)
    used: Mapped[int] = mapped_column(BigInteger)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SyncStatus(Base):
    __tablename__ = "sync_status"
    __table_args__ = (UniqueConstraint("cloud_id", "kind", name="uq_sync_status_cloud_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # capacity, quotas, inventory, health
    provider_up: Mapped[bool] = mapped_column(Boolean, default=False)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_duration_s: Mapped[float | None] = mapped_column(Float)
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    errors_total: Mapped[int] = mapped_column(Integer, default=0)
    calls_total: Mapped[int] = mapped_column(Integer, default=0)
