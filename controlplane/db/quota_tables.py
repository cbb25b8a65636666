"""ORM tables of the quota tree: grant rows (the pool is the root row), observed
usage, requests, reservations and auto-approval policies.

Read and written only through `controlplane.quotastore.SqlQuotaStore`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db.base import Base, UtcDateTime, utcnow

_REQUEST_STATES = "'pending', 'approved', 'rejected', 'cancelled', 'applied', 'failed'"
_RESERVATION_STATES = "'held', 'committed', 'released', 'expired'"


class QuotaGrant(Base):
    """One node of a (cloud, resource class) grant tree.

    The row at the cloud's owner is the pool (`is_pool`): its limit is
    ⌊total × overcommit⌋ − capacity_reserved, × oversubscription. Elsewhere the
    limit is `granted`. `allocated` (Σ children's grants) and `consumed`
    (Σ live reservations) are derived sums kept exact under the row lock by the
    transaction that changes a child; `generation` is the ETag.
    """

    __tablename__ = "quota_grants"
    __table_args__ = (
        UniqueConstraint(
            "cloud_id", "resource_class", "node_id", name="uq_quota_grants_cloud_class_node"
        ),
        CheckConstraint(
            "granted >= 0 AND allocated >= 0 AND consumed >= 0 AND total >= 0 "
            "AND capacity_reserved >= 0",
            name="amounts_not_negative",
        ),
        # The invariant itself, as a last line of defence (pool limits depend
        # on the cloud's overcommit, so they are checked in code only).
        CheckConstraint("is_pool OR allocated + consumed <= granted", name="within_grant"),
        CheckConstraint("level_rank BETWEEN 0 AND 3", name="level_rank"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"))
    resource_class: Mapped[str] = mapped_column(String(32))
    node_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    level_rank: Mapped[int] = mapped_column(SmallInteger)
    is_pool: Mapped[bool] = mapped_column(Boolean)
    granted: Mapped[int] = mapped_column(BigInteger, default=0)
    allocated: Mapped[int] = mapped_column(BigInteger, default=0)
    consumed: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    capacity_reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    oversubscription: Mapped[float] = mapped_column(Float, default=1.0)
    capacity_source: Mapped[str | None] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class QuotaUsage(Base):
    """What a provider reports in use per (project, cloud, class): information for
    reconciliation and metrics, never the enforcement source."""

    __tablename__ = "quota_usage"
    __table_args__ = (
        UniqueConstraint(
            "cloud_id", "resource_class", "node_id", name="uq_quota_usage_cloud_class_node"
        ),
        CheckConstraint("used >= 0", name="used_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"))
    resource_class: Mapped[str] = mapped_column(String(32))
    node_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    used: Mapped[int] = mapped_column(BigInteger)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QuotaRequestRow(Base):
    __tablename__ = "quota_requests"
    __table_args__ = (
        CheckConstraint(f"state IN ({_REQUEST_STATES})", name="state"),
        CheckConstraint("cloud_id IS NOT NULL OR cloud_role IS NOT NULL", name="cloud_named"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    cloud_id: Mapped[int | None] = mapped_column(
        ForeignKey("clouds.id", ondelete="RESTRICT"), index=True
    )
    cloud_role: Mapped[str | None] = mapped_column(String(16))
    cloud_architecture: Mapped[str | None] = mapped_column(String(16))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    needed_by: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class QuotaReservationRow(Base):
    __tablename__ = "quota_reservations"
    __table_args__ = (
        CheckConstraint(f"state IN ({_RESERVATION_STATES})", name="state"),
        Index("ix_quota_reservations_state_expires_at", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"), index=True)
    amounts: Mapped[dict[str, int]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class QuotaAutoApproval(Base):
    """Per approving scope: the largest delta per class approved at filing."""

    __tablename__ = "quota_auto_approval"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), unique=True
    )
    limits: Mapped[dict[str, int]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
