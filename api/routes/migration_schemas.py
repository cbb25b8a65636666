"""Bodies of the migration ledger routes (`/v1/migration/...`).

Field names are the English column names of the spreadsheets; values are the
canonical enum values (the Chinese labels are accepted on import, not here).
A PATCH body holds only the fields to change; `null` clears a field.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from migration.model import (
    ArchitectureRequirement,
    AssetKind,
    AssetStatus,
    Classification,
    Origin,
    RoomStatus,
    SystemState,
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SystemFields(_In):
    classification: Classification | None = None
    mlps_level: int | None = Field(default=None, ge=1, le=4, description="等保 level 1–4")
    architecture: ArchitectureRequirement | None = None
    origin: Origin | None = None
    location: str | None = Field(
        default=None, max_length=200, description="a room of the department, or a cloud code"
    )
    target_cloud: str | None = Field(default=None, max_length=200)
    wave: str | None = Field(default=None, max_length=63)
    projects: list[str] | None = Field(default=None, description="linked project codes")
    depends_on: list[str] | None = Field(
        default=None, description="system names of the department, or department/name"
    )
    exemption_reason: str | None = Field(default=None, max_length=1000)
    exemption_approver: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=2000)


class SystemIn(_SystemFields):
    department: str = Field(min_length=1, max_length=200, description="department code or name")
    name: str = Field(min_length=1, max_length=200)
    mlps_level: int = Field(ge=1, le=4, description="等保 level 1–4")
    state: Literal["inventoried", "assessed"] | None = None


class SystemPatch(_SystemFields):
    pass


class SystemOut(BaseModel):
    id: int
    department: str
    name: str
    classification: Classification
    mlps_level: int
    architecture: ArchitectureRequirement
    origin: Origin
    room: str | None
    current_cloud: str | None
    target_cloud: str | None
    wave: str | None
    state: SystemState
    state_changed_at: datetime | None = None
    projects: list[str]
    depends_on: list[str]
    exemption_reason: str | None
    exemption_approver: str | None
    notes: str | None


class TransitionIn(_In):
    to: SystemState
    reason: str | None = Field(default=None, max_length=1000)
    approver: str | None = Field(
        default=None, max_length=200, description="who signed an exemption"
    )
    wave: str | None = Field(default=None, max_length=63, description="the wave, when planning")
    override: bool = Field(
        default=False,
        description="accept without inventory evidence (admins only; needs a reason)",
    )


class TransitionOut(BaseModel):
    from_state: SystemState = Field(alias="from")
    to_state: SystemState = Field(alias="to")
    reason: str | None
    approver: str | None
    wave: str | None
    override: bool
    evidence: dict[str, Any]
    at: datetime | None = None
    actor: str | None = None

    model_config = ConfigDict(populate_by_name=True)


class SystemDetail(SystemOut):
    history: list[TransitionOut]


class RoomIn(_In):
    department: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    address: str | None = Field(default=None, max_length=300)
    status: Literal["active", "consolidating"] | None = None
    notes: str | None = Field(default=None, max_length=2000)


class RoomPatch(_In):
    address: str | None = Field(default=None, max_length=300)
    notes: str | None = Field(default=None, max_length=2000)


class RoomOut(BaseModel):
    id: int
    department: str
    name: str
    address: str | None
    status: RoomStatus
    notes: str | None


class RoomStatusIn(_In):
    status: RoomStatus


class BlockerOut(BaseModel):
    kind: str
    key: str
    state: str
    message: str


class RoomCheckOut(BaseModel):
    room: RoomOut
    retirable: bool
    blockers: list[BlockerOut]


class AssetIn(_In):
    serial: str = Field(min_length=1, max_length=100)
    department: str = Field(min_length=1, max_length=200)
    room: str = Field(min_length=1, max_length=200)
    kind: AssetKind
    model: str | None = Field(default=None, max_length=200)
    systems: list[str] | None = None
    status: AssetStatus | None = None
    purchased_on: date | None = None
    notes: str | None = Field(default=None, max_length=2000)


class AssetPatch(_In):
    room: str | None = Field(default=None, max_length=200)
    kind: AssetKind | None = None
    model: str | None = Field(default=None, max_length=200)
    systems: list[str] | None = None
    status: AssetStatus | None = None
    purchased_on: date | None = None
    notes: str | None = Field(default=None, max_length=2000)


class AssetOut(BaseModel):
    id: int
    serial: str
    department: str
    room: str
    kind: AssetKind
    model: str | None
    systems: list[str]
    status: AssetStatus
    purchased_on: date | None
    notes: str | None


class WaveIn(_In):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1, max_length=200)
    scope: str = Field(
        min_length=1, max_length=63, description="province, prefecture or department code"
    )
    starts_on: date
    ends_on: date


class WavePatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    starts_on: date | None = None
    ends_on: date | None = None


class WaveOut(BaseModel):
    code: str
    name: str
    scope: str
    starts_on: date
    ends_on: date


class SystemPage(BaseModel):
    items: list[SystemOut]
    total: int


class RoomPage(BaseModel):
    items: list[RoomOut]
    total: int


class AssetPage(BaseModel):
    items: list[AssetOut]
    total: int
