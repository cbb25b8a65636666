"""Migration ledger (上云台账): waves, server rooms, business systems, IT assets,
state transitions; the observed inventory of each cloud (acceptance evidence).

Revision ID: 0004_migration_ledger
Revises: 0003_quotas
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.base

revision: str = "0004_migration_ledger"
down_revision: str | None = "0003_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_utc = controlplane.db.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "ledger_rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'consolidating', 'retired')", name=op.f("ck_ledger_rooms_status")
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["org_nodes.id"],
            name=op.f("fk_ledger_rooms_department_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_rooms")),
        sa.UniqueConstraint("department_id", "name", name=op.f("uq_ledger_rooms_department_name")),
    )
    op.create_index(op.f("ix_ledger_rooms_department_id"), "ledger_rooms", ["department_id"])
    op.create_table(
        "ledger_waves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_ledger_waves_window")),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["org_nodes.id"],
            name=op.f("fk_ledger_waves_scope_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_waves")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_waves_code")),
    )
    op.create_index(op.f("ix_ledger_waves_scope_id"), "ledger_waves", ["scope_id"])
    op.create_table(
        "inventory_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cloud_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("architecture", sa.String(length=16), nullable=True),
        sa.Column("observed_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cloud_id"],
            ["clouds.id"],
            name=op.f("fk_inventory_items_cloud_id_clouds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["org_nodes.id"],
            name=op.f("fk_inventory_items_project_id_org_nodes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_items")),
        sa.UniqueConstraint(
            "cloud_id",
            "kind",
            "external_id",
            name=op.f("uq_inventory_items_cloud_kind_external_id"),
        ),
    )
    op.create_index(
        op.f("ix_inventory_items_project_running"), "inventory_items", ["project_id", "running"]
    )
    op.create_table(
        "inventory_syncs",
        sa.Column("cloud_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("observed_at", _utc(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cloud_id"],
            ["clouds.id"],
            name=op.f("fk_inventory_syncs_cloud_id_clouds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cloud_id", name=op.f("pk_inventory_syncs")),
    )
    op.create_table(
        "ledger_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("purchased_on", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('server', 'storage', 'network', 'security')",
            name=op.f("ck_ledger_assets_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('in-use', 'idle', 'retired', 'disposed')",
            name=op.f("ck_ledger_assets_status"),
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["ledger_rooms.id"],
            name=op.f("fk_ledger_assets_room_id_ledger_rooms"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_assets")),
        sa.UniqueConstraint("serial", name=op.f("uq_ledger_assets_serial")),
    )
    op.create_index(op.f("ix_ledger_assets_room_id"), "ledger_assets", ["room_id"])
    op.create_table(
        "ledger_systems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("mlps_level", sa.SmallInteger(), nullable=False),
        sa.Column("architecture", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=True),
        sa.Column("current_cloud_id", sa.Integer(), nullable=True),
        sa.Column("target_cloud_id", sa.Integer(), nullable=True),
        sa.Column("wave_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_changed_at", _utc(), nullable=False),
        sa.Column("exemption_reason", sa.Text(), nullable=True),
        sa.Column("exemption_approver", sa.String(length=200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "architecture IN ('any', 'x86_64', 'xinchuang')",
            name=op.f("ck_ledger_systems_architecture"),
        ),
        sa.CheckConstraint(
            "classification IN ('non-classified', 'classified')",
            name=op.f("ck_ledger_systems_classification"),
        ),
        sa.CheckConstraint(
            "origin IN ('existing', 'new', 'rebuilt')", name=op.f("ck_ledger_systems_origin")
        ),
        sa.CheckConstraint(
            "state IN ('inventoried', 'assessed', 'planned', 'migrating', 'cut-over', "
            "'accepted', 'exempted', 'rolled-back', 'decommissioned')",
            name=op.f("ck_ledger_systems_state"),
        ),
        sa.CheckConstraint("mlps_level BETWEEN 1 AND 4", name=op.f("ck_ledger_systems_mlps_level")),
        sa.CheckConstraint(
            "room_id IS NULL OR current_cloud_id IS NULL",
            name=op.f("ck_ledger_systems_one_location"),
        ),
        sa.ForeignKeyConstraint(
            ["current_cloud_id"],
            ["clouds.id"],
            name=op.f("fk_ledger_systems_current_cloud_id_clouds"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["org_nodes.id"],
            name=op.f("fk_ledger_systems_department_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["ledger_rooms.id"],
            name=op.f("fk_ledger_systems_room_id_ledger_rooms"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["target_cloud_id"],
            ["clouds.id"],
            name=op.f("fk_ledger_systems_target_cloud_id_clouds"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["wave_id"],
            ["ledger_waves.id"],
            name=op.f("fk_ledger_systems_wave_id_ledger_waves"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_systems")),
        sa.UniqueConstraint(
            "department_id", "name", name=op.f("uq_ledger_systems_department_name")
        ),
    )
    op.create_index(op.f("ix_ledger_systems_department_id"), "ledger_systems", ["department_id"])
    op.create_index(op.f("ix_ledger_systems_room_id"), "ledger_systems", ["room_id"])
    op.create_index(
        op.f("ix_ledger_systems_state_department"), "ledger_systems", ["state", "department_id"]
    )
    op.create_index(
        op.f("ix_ledger_systems_target_cloud_id"), "ledger_systems", ["target_cloud_id"]
    )
    op.create_index(op.f("ix_ledger_systems_wave_id"), "ledger_systems", ["wave_id"])
    op.create_table(
        "ledger_asset_systems",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["ledger_assets.id"],
            name=op.f("fk_ledger_asset_systems_asset_id_ledger_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["ledger_systems.id"],
            name=op.f("fk_ledger_asset_systems_system_id_ledger_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_id", "system_id", name=op.f("pk_ledger_asset_systems")),
    )
    op.create_index(
        op.f("ix_ledger_asset_systems_system_id"), "ledger_asset_systems", ["system_id"]
    )
    op.create_table(
        "ledger_system_deps",
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("depends_on_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["ledger_systems.id"],
            name=op.f("fk_ledger_system_deps_depends_on_id_ledger_systems"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["ledger_systems.id"],
            name=op.f("fk_ledger_system_deps_system_id_ledger_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("system_id", "depends_on_id", name=op.f("pk_ledger_system_deps")),
    )
    op.create_index(
        op.f("ix_ledger_system_deps_depends_on_id"), "ledger_system_deps", ["depends_on_id"]
    )
    op.create_table(
        "ledger_system_projects",
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["org_nodes.id"],
            name=op.f("fk_ledger_system_projects_project_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["ledger_systems.id"],
            name=op.f("fk_ledger_system_projects_system_id_ledger_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("system_id", "project_id", name=op.f("pk_ledger_system_projects")),
    )
    op.create_index(
        op.f("ix_ledger_system_projects_project_id"), "ledger_system_projects", ["project_id"]
    )
    op.create_table(
        "ledger_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("approver", sa.String(length=200), nullable=True),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["ledger_systems.id"],
            name=op.f("fk_ledger_transitions_system_id_ledger_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transitions")),
    )
    op.create_index(op.f("ix_ledger_transitions_system_id"), "ledger_transitions", ["system_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_transitions_system_id"), table_name="ledger_transitions")
    op.drop_table("ledger_transitions")
    op.drop_index(op.f("ix_ledger_system_projects_project_id"), table_name="ledger_system_projects")
    op.drop_table("ledger_system_projects")
    op.drop_index(op.f("ix_ledger_system_deps_depends_on_id"), table_name="ledger_system_deps")
    op.drop_table("ledger_system_deps")
    op.drop_index(op.f("ix_ledger_asset_systems_system_id"), table_name="ledger_asset_systems")
    op.drop_table("ledger_asset_systems")
    op.drop_index(op.f("ix_ledger_systems_wave_id"), table_name="ledger_systems")
    op.drop_index(op.f("ix_ledger_systems_target_cloud_id"), table_name="ledger_systems")
    op.drop_index(op.f("ix_ledger_systems_state_department"), table_name="ledger_systems")
    op.drop_index(op.f("ix_ledger_systems_room_id"), table_name="ledger_systems")
    op.drop_index(op.f("ix_ledger_systems_department_id"), table_name="ledger_systems")
    op.drop_table("ledger_systems")
    op.drop_index(op.f("ix_ledger_assets_room_id"), table_name="ledger_assets")
    op.drop_table("ledger_assets")
    op.drop_table("inventory_syncs")
    op.drop_index(op.f("ix_inventory_items_project_running"), table_name="inventory_items")
    op.drop_table("inventory_items")
    op.drop_index(op.f("ix_ledger_waves_scope_id"), table_name="ledger_waves")
    op.drop_table("ledger_waves")
    op.drop_index(op.f("ix_ledger_rooms_department_id"), table_name="ledger_rooms")
    op.drop_table("ledger_rooms")
