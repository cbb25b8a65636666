"""Identity and audit: users, role bindings, API tokens, the audit chain; org paths.

Revision ID: 0002_identity
Revises: 0001_topology
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.base

revision: str = "0002_identity"
down_revision: str | None = "0001_topology"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_utc = controlplane.db.base.UtcDateTime
_GENESIS = "0" * 64


def _backfill_paths() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, code, parent_id FROM org_nodes")).all()
    by_id = {r.id: r for r in rows}
    paths: dict[int, str] = {}

    def path_of(node_id: int) -> str:
        if node_id not in paths:
            row = by_id[node_id]
            parent = path_of(row.parent_id) if row.parent_id is not None else "/"
            paths[node_id] = f"{parent}{row.code}/"
        return paths[node_id]

    for node_id in by_id:
        conn.execute(
            sa.text("UPDATE org_nodes SET path = :p WHERE id = :i"),
            {"p": path_of(node_id), "i": node_id},
        )


def upgrade() -> None:
    with op.batch_alter_table("org_nodes") as batch:
        batch.add_column(sa.Column("path", sa.String(length=255), nullable=True))
    _backfill_paths()
    with op.batch_alter_table("org_nodes") as batch:
        batch.alter_column("path", existing_type=sa.String(length=255), nullable=False)
        batch.create_index(batch.f("ix_org_nodes_path"), ["path"])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("home_scope_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["home_scope_id"],
            ["org_nodes.id"],
            name=op.f("fk_users_home_scope_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
    )
    op.create_index(op.f("ix_users_home_scope_id"), "users", ["home_scope_id"])
    op.create_table(
        "role_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "role IN ('province-admin', 'prefecture-admin', 'department-manager', "
            "'department-member', 'ops-viewer', 'auditor')",
            name=op.f("ck_role_bindings_role"),
        ),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["org_nodes.id"],
            name=op.f("fk_role_bindings_scope_id_org_nodes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_role_bindings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_bindings")),
        sa.UniqueConstraint("user_id", "role", "scope_id", name="uq_role_bindings_user_role_scope"),
    )
    op.create_index(op.f("ix_role_bindings_scope_id"), "role_bindings", ["scope_id"])
    op.create_index(op.f("ix_role_bindings_user_id"), "role_bindings", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("last_used_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("selector", name=op.f("uq_api_tokens_selector")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("scope_path", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=128), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"])
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"])
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index(op.f("ix_audit_log_scope_path"), "audit_log", ["scope_path"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": _GENESIS}])


def downgrade() -> None:
    op.drop_table("audit_head")
    for name in ("action", "actor", "at", "scope_path"):
        op.drop_index(op.f(f"ix_audit_log_{name}"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_role_bindings_user_id"), table_name="role_bindings")
    op.drop_index(op.f("ix_role_bindings_scope_id"), table_name="role_bindings")
    op.drop_table("role_bindings")
    op.drop_index(op.f("ix_users_home_scope_id"), table_name="users")
    op.drop_table("users")
    with op.batch_alter_table("org_nodes") as batch:
        batch.drop_index(batch.f("ix_org_nodes_path"))
        batch.drop_column("path")
