"""ORM tables of the migration ledger (上云台账) and of the observed inventory.

Systems and rooms belong to a department (an org node), so every scope check
is a join on `org_nodes.path`. `inventory_items` holds the latest inventory
of each cloud as the sync task observed it (replaced whole per cloud by
`controlplane.ledgerstore.inventory.replace_cloud_inventory`), and is the
evidence a system's acceptance is checked against.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controlplane.db.base import Base, UtcDateTime, utcnow
from controlplane.db.tables import Cloud, OrgNode


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


SYSTEM_STATES = (
    "inventoried", "assessed", "planned", "migrating", "cut-over", "accepted", "exempted",
    "rolled-back", "decommissioned",
)  # fmt: skip
ROOM_STATUSES = ("active", "consolidating", "retired")
ASSET_KINDS = ("server", "storage", "network", "security")
ASSET_STATUSES = ("in-use", "idle", "retired", "disposed")


class LedgerWave(Base):
    __tablename__ = "ledger_waves"
    __table_args__ = (CheckConstraint("ends_on >= starts_on", name="window"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    scope_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    scope: Mapped[OrgNode] = relationship()


class LedgerRoom(Base):
    __tablename__ = "ledger_rooms"
    __table_args__ = (
        UniqueConstraint("department_id", "name", name="uq_ledger_rooms_department_name"),
        CheckConstraint(f"status IN ({_in(ROOM_STATUSES)})", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="active")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    department: Mapped[OrgNode] = relationship()


system_projects = Table(
    "ledger_system_projects",
    Base.metadata,
    Column(
        "system_id",
        ForeignKey("ledger_systems.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "project_id",
        ForeignKey("org_nodes.id", ondelete="RESTRICT"),
        primary_key=True,
        index=True,
    ),
)

system_dependencies = Table(
    "ledger_system_deps",
    Base.metadata,
    Column("system_id", ForeignKey("ledger_systems.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "depends_on_id",
        ForeignKey("ledger_systems.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

asset_systems = Table(
    "ledger_asset_systems",
    Base.metadata,
    Column("asset_id", ForeignKey("ledger_assets.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "system_id",
        ForeignKey("ledger_systems.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class LedgerSystem(Base):
    """One business system: where it runs, where it goes, how far it got."""

    __tablename__ = "ledger_systems"
    __table_args__ = (
        UniqueConstraint("department_id", "name", name="uq_ledger_systems_department_name"),
        CheckConstraint(f"state IN ({_in(SYSTEM_STATES)})", name="state"),
        CheckConstraint(
            "classification IN ('non-classified', 'classified')", name="classification"
        ),
        CheckConstraint("mlps_level BETWEEN 1 AND 4", name="mlps_level"),
        CheckConstraint("architecture IN ('any', 'x86_64', 'xinchuang')", name="architecture"),
        CheckConstraint("origin IN ('existing', 'new', 'rebuilt')", name="origin"),
        # A system is in a room or already on a cloud, never both.
        CheckConstraint("room_id IS NULL OR current_cloud_id IS NULL", name="one_location"),
        Index("ix_ledger_systems_state_department", "state", "department_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("org_nodes.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    classification: Mapped[str] = mapped_column(String(16), default="non-classified")
    mlps_level: Mapped[int] = mapped_column(SmallInteger)
    architecture: Mapped[str] = mapped_column(String(16), default="any")
    origin: Mapped[str] = mapped_column(String(16), default="existing")
    room_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_rooms.id", ondelete="RESTRICT"), index=True
    )
    current_cloud_id: Mapped[int | None] = mapped_column(
        ForeignKey("clouds.id", ondelete="RESTRICT")
    )
    target_cloud_id: Mapped[int | None] = mapped_column(
        ForeignKey("clouds.id", ondelete="RESTRICT"), index=True
    )
    wave_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_waves.id", ondelete="RESTRICT"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default="inventoried")
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    exemption_reason: Mapped[str | None] = mapped_column(Text)
    exemption_approver: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    department: Mapped[OrgNode] = relationship()
    room: Mapped[LedgerRoom | None] = relationship()
    current_cloud: Mapped[Cloud | None] = relationship(foreign_keys=[current_cloud_id])
    target_cloud: Mapped[Cloud | None] = relationship(foreign_keys=[target_cloud_id])
    wave: Mapped[LedgerWave | None] = relationship()
    projects: Mapped[list[OrgNode]] = relationship(secondary=system_projects, order_by=OrgNode.code)
    depends_on: Mapped[list[LedgerSystem]] = relationship(
        secondary=system_dependencies,
        primaryjoin=lambda: LedgerSystem.id == system_dependencies.c.system_id,
        secondaryjoin=lambda: LedgerSystem.id == system_dependencies.c.depends_on_id,
    )


class LedgerAsset(Base):
    __tablename__ = "ledger_assets"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(ASSET_KINDS)})", name="kind"),
        CheckConstraint(f"status IN ({_in(ASSET_STATUSES)})", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    room_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_rooms.id", ondelete="RESTRICT"), index=True
    )
    model: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="in-use")
    purchased_on: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    room: Mapped[LedgerRoom] = relationship()
    systems: Mapped[list[LedgerSystem]] = relationship(
        secondary=asset_systems, order_by=LedgerSystem.name
    )


class LedgerTransition(Base):
    """The history of a system's states: who moved it, why, on what evidence."""

    __tablename__ = "ledger_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_systems.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    approver: Mapped[str | None] = mapped_column(String(200))
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class InventorySync(Base):
    """When each cloud's inventory was last observed (one row per cloud)."""

    __tablename__ = "inventory_syncs"

    cloud_id: Mapped[int] = mapped_column(
        ForeignKey("clouds.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    items: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer)


class InventoryItem(Base):
    """One workload a cloud reported: a server, a pod, a job, a volume."""

    __tablename__ = "inventory_items"
    __table_args__ = (
        UniqueConstraint(
            "cloud_id", "kind", "external_id", name="uq_inventory_items_cloud_kind_external_id"
        ),
        Index("ix_inventory_items_project_running", "project_id", "running"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("org_nodes.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(64))
    running: Mapped[bool] = mapped_column(Boolean)
    architecture: Mapped[str | None] = mapped_column(String(16))
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)
