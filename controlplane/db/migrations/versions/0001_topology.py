"""Topology: organisation tree and clouds.

Revision ID: 0001_topology
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.base

revision: str = "0001_topology"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_utc = controlplane.db.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "org_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "level IN ('province', 'prefecture', 'department', 'project')",
            name=op.f("ck_org_nodes_level"),
        ),
        sa.CheckConstraint(
            "(level = 'province') = (parent_id IS NULL)",
            name=op.f("ck_org_nodes_root_is_province"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["org_nodes.id"],
            name=op.f("fk_org_nodes_parent_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_nodes")),
        sa.UniqueConstraint("code", name=op.f("uq_org_nodes_code")),
    )
    op.create_index(op.f("ix_org_nodes_parent_id"), "org_nodes", ["parent_id"])
    op.create_table(
        "clouds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("architectures", sa.JSON(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("connection", sa.JSON(), nullable=False),
        sa.Column("overcommit", sa.JSON(), nullable=False),
        sa.Column("accelerators", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('openstack', 'kubernetes', 'slurm')", name=op.f("ck_clouds_kind")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["org_nodes.id"],
            name=op.f("fk_clouds_owner_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clouds")),
        sa.UniqueConstraint("code", name=op.f("uq_clouds_code")),
    )
    op.create_index(op.f("ix_clouds_owner_id"), "clouds", ["owner_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_clouds_owner_id"), table_name="clouds")
    op.drop_table("clouds")
    op.drop_index(op.f("ix_org_nodes_parent_id"), table_name="org_nodes")
    op.drop_table("org_nodes")
