"""What an import (or one API write) is checked against: the org tree, the clouds,
the waves, and the ledger's current records, keyed by natural key.

Records are plain dicts in one canonical form, the same whether they were read
from the database or parsed from a sheet, so "unchanged" is a dict compare and
import → export → import is a no-op:

    wave    code, name, scope, starts_on, ends_on
    room    department, name, address, status, notes
    system  department, name, classification, mlps_level, architecture, origin,
            room | current_cloud, target_cloud, wave, state, projects,
            depends_on, exemption_reason, exemption_approver, notes
    asset   serial, department, room, kind, model, systems, status,
            purchased_on, notes

Natural keys: a system and a room are (department, name); an asset is its
serial; a wave its code. `controlplane.ledgerstore` fills a catalog from the
database, limited to what the caller may see, and writes the planned records.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migration.model import (
    ArchitectureRequirement,
    AssetStatus,
    Classification,
    Origin,
    RoomStatus,
    SystemState,
    TargetCloud,
)

Record = dict[str, Any]

SYSTEM_FIELDS = (
    "department", "name", "classification", "mlps_level", "architecture", "origin", "room",
    "current_cloud", "target_cloud", "wave", "state", "projects", "depends_on",
    "exemption_reason", "exemption_approver", "notes",
)  # fmt: skip
ROOM_FIELDS = ("department", "name", "address", "status", "notes")
ASSET_FIELDS = (
    "serial", "department", "room", "kind", "model", "systems", "status", "purchased_on", "notes",
)  # fmt: skip
WAVE_FIELDS = ("code", "name", "scope", "starts_on", "ends_on")

# What a new record holds before its row's cells are applied.
SYSTEM_DEFAULTS: Record = {
    "classification": Classification.NON_CLASSIFIED,
    "mlps_level": None,
    "architecture": ArchitectureRequirement.ANY,
    "origin": Origin.EXISTING,
    "room": None,
    "current_cloud": None,
    "target_cloud": None,
    "wave": None,
    "state": SystemState.INVENTORIED,
    "projects": (),
    "depends_on": (),
    "exemption_reason": None,
    "exemption_approver": None,
    "notes": None,
}
ROOM_DEFAULTS: Record = {"address": None, "status": RoomStatus.ACTIVE, "notes": None}
ASSET_DEFAULTS: Record = {
    "model": None,
    "systems": (),
    "status": AssetStatus.IN_USE,
    "purchased_on": None,
    "notes": None,
}


def within(path: str, scopes: tuple[str, ...]) -> bool:
    """`path` lies in one of the scopes' subtrees (org paths end in "/")."""
    return any(path.startswith(s) for s in scopes)


def on_path(path: str, scopes: tuple[str, ...]) -> bool:
    return any(path.startswith(s) or s.startswith(path) for s in scopes)


@dataclass(frozen=True)
class OrgRef:
    code: str
    name: str
    level: str
    path: str
    parent: str | None


@dataclass
class Catalog:
    org: dict[str, OrgRef]
    clouds: dict[str, TargetCloud]  # those the caller may target
    cloud_names: dict[str, str] = field(default_factory=dict)  # Chinese name → code
    waves: dict[str, Record] = field(default_factory=dict)
    rooms: dict[tuple[str, str], Record] = field(default_factory=dict)
    systems: dict[tuple[str, str], Record] = field(default_factory=dict)
    assets: dict[str, Record] = field(default_factory=dict)
    read_scopes: tuple[str, ...] | None = None  # None: everything (the CLI)
    write_scopes: tuple[str, ...] | None = None
    _dept_names: dict[str, list[str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for ref in self.org.values():
            if ref.level == "department":
                self._dept_names.setdefault(ref.name, []).append(ref.code)

    # -- scopes --------------------------------------------------------------
    def can_read(self, path: str) -> bool:
        return self.read_scopes is None or within(path, self.read_scopes)

    def can_see_node(self, path: str) -> bool:
        """Org nodes on the way down to a scope are visible too (a province wave)."""
        return self.read_scopes is None or on_path(path, self.read_scopes)

    def can_write(self, path: str) -> bool:
        return self.write_scopes is None or within(path, self.write_scopes)

    # -- resolution ----------------------------------------------------------
    def department(self, text: str) -> tuple[OrgRef | None, str | None]:
        """A department by code or exact name, if the caller may write there."""
        ref = self.org.get(text)
        if ref is None or ref.level != "department":
            codes = self._dept_names.get(text, [])
            if len(codes) > 1:
                return None, f"{text!r} names {len(codes)} departments; use the code"
            ref = self.org[codes[0]] if codes else None
        if ref is None or not self.can_read(ref.path):
            return None, f"unknown department {text!r}"
        if not self.can_write(ref.path):
            return None, f"department {ref.code!r} is outside the scopes you may change"
        return ref, None

    def cloud(self, text: str) -> TargetCloud | None:
        return self.clouds.get(text) or self.clouds.get(self.cloud_names.get(text, ""))

    def project_of(self, code: str, department: str) -> str | None:
        """Why `code` cannot be linked to a system of `department`, or None."""
        ref = self.org.get(code)
        if ref is None or ref.level != "project" or not self.can_read(ref.path):
            return f"unknown project {code!r}"
        if ref.parent != department:
            return f"project {code!r} belongs to {ref.parent!r}, not {department!r}"
        return None

    def path_of(self, code: str) -> str:
        return self.org[code].path
