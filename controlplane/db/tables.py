"""ORM tables of the topology: the organisation tree and the clouds.

Other areas (identity, quotas, migration ledger) add their own table modules;
`controlplane.db.models` imports them all so Alembic sees one metadata.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controlplane.db.base import Base, UtcDateTime, utcnow

_LEVELS = "'province', 'prefecture', 'department', 'project'"
_KINDS = "'openstack', 'kubernetes', 'slurm'"


class OrgNode(Base):
    """One node of province → prefecture → department → project."""

    __tablename__ = "org_nodes"
    __table_args__ = (
        CheckConstraint(f"level IN ({_LEVELS})", name="level"),
        # Only the province is a root; everything else hangs below something.
        CheckConstraint("(level = 'province') = (parent_id IS NULL)", name="root_is_province"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    # Materialised path of codes, "/hunan/changsha/cs-data/": scope checks are
    # a prefix match in SQL, so lists are filtered before they are paginated.
    path: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    parent: Mapped[OrgNode | None] = relationship(remote_side=[id])


class Cloud(Base):
    """A registered cloud; `connection` names credentials, never holds them."""

    __tablename__ = "clouds"
    __table_args__ = (CheckConstraint(f"kind IN ({_KINDS})", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    architectures: Mapped[list[str]] = mapped_column(JSON)
    region: Mapped[str] = mapped_column(String(64))
    connection: Mapped[dict[str, Any]] = mapped_column(JSON)
    overcommit: Mapped[dict[str, float]] = mapped_column(JSON)
    accelerators: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[OrgNode] = relationship()
