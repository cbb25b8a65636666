"""Quotas: grant trees (pools at the root), observed usage, requests,
reservations, auto-approval policies; the transactional outbox; idempotency keys.

Revision ID: 0003_quotas
Revises: 0002_identity
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.base

revision: str = "0003_quotas"
down_revision: str | None = "0002_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_utc = controlplane.db.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("actor", "key", name=op.f("uq_idempotency_keys_actor_key")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("aggregate_type", sa.String(length=50), nullable=False),
        sa.Column("aggregate_id", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("published_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_published_at"), "outbox", ["published_at"])
    op.create_table(
        "quota_auto_approval",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["org_nodes.id"],
            name=op.f("fk_quota_auto_approval_scope_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_auto_approval")),
        sa.UniqueConstraint("scope_id", name=op.f("uq_quota_auto_approval_scope_id")),
    )
    op.create_table(
        "quota_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=32), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("level_rank", sa.SmallInteger(), nullable=False),
        sa.Column("is_pool", sa.Boolean(), nullable=False),
        sa.Column("granted", sa.BigInteger(), nullable=False),
        sa.Column("allocated", sa.BigInteger(), nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("capacity_reserved", sa.BigInteger(), nullable=False),
        sa.Column("oversubscription", sa.Float(), nullable=False),
        sa.Column("capacity_source", sa.String(length=16), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "granted >= 0 AND allocated >= 0 AND consumed >= 0 AND total >= 0 "
            "AND capacity_reserved >= 0",
            name=op.f("ck_quota_grants_amounts_not_negative"),
        ),
        sa.CheckConstraint(
            "is_pool OR allocated + consumed <= granted", name=op.f("ck_quota_grants_within_grant")
        ),
        sa.CheckConstraint("level_rank BETWEEN 0 AND 3", name=op.f("ck_quota_grants_level_rank")),
        sa.ForeignKeyConstraint(
            ["cloud_id"],
            ["clouds.id"],
            name=op.f("fk_quota_grants_cloud_id_clouds"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["org_nodes.id"],
            name=op.f("fk_quota_grants_node_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_grants")),
        sa.UniqueConstraint(
            "cloud_id", "resource_class", "node_id", name=op.f("uq_quota_grants_cloud_class_node")
        ),
    )
    op.create_index(op.f("ix_quota_grants_node_id"), "quota_grants", ["node_id"])
    op.create_table(
        "quota_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=True),
        sa.Column("cloud_role", sa.String(length=16), nullable=True),
        sa.Column("cloud_architecture", sa.String(length=16), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("needed_by", sa.Date(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", _utc(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'rejected', 'cancelled', 'applied', 'failed')",
            name=op.f("ck_quota_requests_state"),
        ),
        sa.CheckConstraint(
            "cloud_id IS NOT NULL OR cloud_role IS NOT NULL",
            name=op.f("ck_quota_requests_cloud_named"),
        ),
        sa.ForeignKeyConstraint(
            ["cloud_id"],
            ["clouds.id"],
            name=op.f("fk_quota_requests_cloud_id_clouds"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["org_nodes.id"],
            name=op.f("fk_quota_requests_project_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_requests")),
    )
    op.create_index(op.f("ix_quota_requests_cloud_id"), "quota_requests", ["cloud_id"])
    op.create_index(op.f("ix_quota_requests_project_id"), "quota_requests", ["project_id"])
    op.create_index(op.f("ix_quota_requests_state"), "quota_requests", ["state"])
    op.create_table(
        "quota_reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("amounts", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "state IN ('held', 'committed', 'released', 'expired')",
            name=op.f("ck_quota_reservations_state"),
        ),
        sa.ForeignKeyConstraint(
            ["cloud_id"],
            ["clouds.id"],
            name=op.f("fk_quota_reservations_cloud_id_clouds"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["org_nodes.id"],
            name=op.f("fk_quota_reservations_project_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservations")),
    )
    op.create_index(op.f("ix_quota_reservations_cloud_id"), "quota_reservations", ["cloud_id"])
    op.create_index(op.f("ix_quota_reservations_project_id"), "quota_reservations", ["project_id"])
    op.create_index(
        op.f("ix_quota_reservations_state_expires_at"),
        "quota_reservations",
        ["state", "expires_at"],
    )
    op.create_table(
        "quota_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=32), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", _utc(), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_quota_usage_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["cloud_id"],
            ["clouds.id"],
            name=op.f("fk_quota_usage_cloud_id_clouds"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["org_nodes.id"],
            name=op.f("fk_quota_usage_node_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_usage")),
        sa.UniqueConstraint(
            "cloud_id", "resource_class", "node_id", name=op.f("uq_quota_usage_cloud_class_node")
        ),
    )
    op.create_index(op.f("ix_quota_usage_node_id"), "quota_usage", ["node_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_quota_usage_node_id"), table_name="quota_usage")
    op.drop_table("quota_usage")
    op.drop_index(op.f("ix_quota_reservations_state_expires_at"), table_name="quota_reservations")
    op.drop_index(op.f("ix_quota_reservations_project_id"), table_name="quota_reservations")
    op.drop_index(op.f("ix_quota_reservations_cloud_id"), table_name="quota_reservations")
    op.drop_table("quota_reservations")
    op.drop_index(op.f("ix_quota_requests_state"), table_name="quota_requests")
    op.drop_index(op.f("ix_quota_requests_project_id"), table_name="quota_requests")
    op.drop_index(op.f("ix_quota_requests_cloud_id"), table_name="quota_requests")
    op.drop_table("quota_requests")
    op.drop_index(op.f("ix_quota_grants_node_id"), table_name="quota_grants")
    op.drop_table("quota_grants")
    op.drop_table("quota_auto_approval")
    op.drop_index(op.f("ix_outbox_published_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
