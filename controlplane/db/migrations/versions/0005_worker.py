"""Provisioning and reconciliation: operations, cloud tenants, observations, sync status.

Revision ID: 0005_worker
Revises: 0004_migration_ledger
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.base

revision: str = "0005_worker"
down_revision: str | None = "0004_migration_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_utc = controlplane.db.base.UtcDateTime


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("scope_path", sa.String(length=255), nullable=False),
        sa.Column("target_generation", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("source_event_id", sa.Integer(), nullable=True),
        sa.Column("dispatched_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("lease_expires_at", _utc(), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'superseded')",
            name=op.f("ck_operations_status"),
        ),
        _fk("operations", "cloud_id", "clouds"),
        _fk("operations", "node_id", "org_nodes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sa.UniqueConstraint("source_event_id", name=op.f("uq_operations_source_event_id")),
    )
    op.create_index("ix_operations_target", "operations", ["cloud_id", "node_id", "kind", "status"])
    op.create_index(op.f("ix_operations_scope_path"), "operations", ["scope_path"])
    op.create_index(op.f("ix_operations_status"), "operations", ["status"])
    op.create_table(
        "cloud_tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=255), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("applied_generation", sa.BigInteger(), nullable=False),
        sa.Column("ensured_at", _utc(), nullable=False),
        _fk("cloud_tenants", "cloud_id", "clouds"),
        _fk("cloud_tenants", "node_id", "org_nodes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_tenants")),
        sa.UniqueConstraint("cloud_id", "node_id", name="uq_cloud_tenants_cloud_node"),
    )
    op.create_table(
        "quota_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=32), nullable=False),
        sa.Column("limit", sa.BigInteger(), nullable=True),
        sa.Column("granted", sa.BigInteger(), nullable=True),
        sa.Column("drift", sa.Boolean(), nullable=False),
        sa.Column("observed_at", _utc(), nullable=False),
        _fk("quota_observations", "cloud_id", "clouds"),
        _fk("quota_observations", "project_id", "org_nodes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_observations")),
        sa.UniqueConstraint(
            "cloud_id", "project_id", "resource_class", name="uq_quota_observations_key"
        ),
    )
    op.create_table(
        "capacity_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=32), nullable=False),
        sa.Column("architecture", sa.String(length=16), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("allocation_ratio", sa.Float(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", _utc(), nullable=False),
        _fk("capacity_observations", "cloud_id", "clouds"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capacity_observations")),
        sa.UniqueConstraint(
            "cloud_id", "resource_class", "architecture", name="uq_capacity_observations_key"
        ),
    )
    op.create_table(
        "sync_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider_up", sa.Boolean(), nullable=False),
        sa.Column("last_attempt_at", _utc(), nullable=True),
        sa.Column("last_success_at", _utc(), nullable=True),
        sa.Column("last_duration_s", sa.Float(), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("errors_total", sa.Integer(), nullable=False),
        sa.Column("calls_total", sa.Integer(), nullable=False),
        _fk("sync_status", "cloud_id", "clouds"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_status")),
        sa.UniqueConstraint("cloud_id", "kind", name="uq_sync_status_cloud_kind"),
    )


def downgrade() -> None:
    op.drop_table("sync_status")
    op.drop_table("capacity_observations")
    op.drop_table("quota_observations")
    op.drop_table("cloud_tenants")
    op.drop_index(op.f("ix_operations_status"), table_name="operations")
    op.drop_index(op.f("ix_operations_scope_path"), table_name="operations")
    op.drop_index("ix_operations_target", table_name="operations")
    op.drop_table("operations")
