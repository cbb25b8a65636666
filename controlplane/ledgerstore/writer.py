"""Writes a checked `Plan` (records keyed by natural key) into the ledger tables.

Creates and updates go in bulk (executemany), kind by kind in dependency
order — waves, rooms, systems and their links, assets and theirs — so a
50,000-row sheet is a handful of statements, not 50,000 round trips. Codes
in the records become ids here; the planner has already proved each exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.ledger_tables import (
    LedgerAsset,
    LedgerRoom,
    LedgerSystem,
    LedgerWave,
    asset_systems,
    system_dependencies,
    system_projects,
)
from controlplane.db.tables import Cloud, OrgNode
from migration.columns import SheetKind
from migration.importing import Op
from migration.report import Action

_CHUNK = 500


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class PlanWriter:
    def __init__(self, session: Session) -> None:
        self._s = session
        self._org = dict(session.execute(select(OrgNode.code, OrgNode.id)).all())
        self._clouds = dict(session.execute(select(Cloud.code, Cloud.id)).all())

    def write(self, ops: Sequence[Op]) -> None:
        by_kind: dict[SheetKind, list[Op]] = {k: [] for k in SheetKind}
        for op in ops:
            by_kind[op.kind].append(op)
        self._waves(by_kind[SheetKind.WAVES])
        self._rooms(by_kind[SheetKind.ROOMS])
        self._systems(by_kind[SheetKind.SYSTEMS])
        self._assets(by_kind[SheetKind.ASSETS])
        self._s.flush()

    def _upsert(self, model: Any, ops: Sequence[Op], values: Any, ids: dict[Any, int]) -> None:
        now = utcnow()
        creates = [{**values(op.record), "created_at": now, "updated_at": now}
                   for op in ops if op.action is Action.CREATE]  # fmt: skip
        updates = [{**values(op.record), "id": ids[op.key], "updated_at": now}
                   for op in ops if op.action is Action.UPDATE]  # fmt: skip
        for chunk in _chunks(creates):
            self._s.execute(insert(model), list(chunk))
        for chunk in _chunks(updates):
            self._s.execute(update(model), list(chunk))

    # -- waves and rooms -------------------------------------------------------
    def _waves(self, ops: list[Op]) -> None:
        if not ops:
            return
        ids = {(c,): i for c, i in self._s.execute(select(LedgerWave.code, LedgerWave.id))}
        self._upsert(
            LedgerWave,
            ops,
            lambda r: {
                "code": r["code"],
                "name": r["name"],
                "scope_id": self._org[r["scope"]],
                "starts_on": r["starts_on"],
                "ends_on": r["ends_on"],
            },
            ids,
        )

    def _room_ids(self) -> dict[tuple[str, ...], int]:
        return {
            (d, n): i
            for d, n, i in self._s.execute(
                select(OrgNode.code, LedgerRoom.name, LedgerRoom.id).join(
                    OrgNode, OrgNode.id == LedgerRoom.department_id
                )
            )
        }

    def _rooms(self, ops: list[Op]) -> None:
        if not ops:
            return
        self._upsert(
            LedgerRoom,
            ops,
            lambda r: {
                "department_id": self._org[r["department"]],
                "name": r["name"],
                "address": r["address"],
                "status": r["status"].value,
                "notes": r["notes"],
            },
            self._room_ids(),
        )

    # -- systems -----------------------------------------------------------------
    def _system_ids(self) -> dict[tuple[str, ...], int]:
        return {
            (d, n): i
            for d, n, i in self._s.execute(
                select(OrgNode.code, LedgerSystem.name, LedgerSystem.id).join(
                    OrgNode, OrgNode.id == LedgerSystem.department_id
                )
            )
        }

    def _systems(self, ops: list[Op]) -> None:
        if not ops:
            return
        rooms = self._room_ids()
        waves = dict(self._s.execute(select(LedgerWave.code, LedgerWave.id)).all())

        def values(r: dict[str, Any]) -> dict[str, Any]:
            return {
                "department_id": self._org[r["department"]],
                "name": r["name"],
                "classification": r["classification"].value,
                "mlps_level": r["mlps_level"],
                "architecture": r["architecture"].value,
                "origin": r["origin"].value,
                "room_id": rooms[(r["department"], r["room"])] if r["room"] else None,
                "current_cloud_id": self._clouds.get(r["current_cloud"] or ""),
                "target_cloud_id": self._clouds.get(r["target_cloud"] or ""),
                "wave_id": waves.get(r["wave"] or ""),
                "state": r["state"].value,
                "exemption_reason": r["exemption_reason"],
                "exemption_approver": r["exemption_approver"],
                "notes": r["notes"],
            }

        self._upsert(LedgerSystem, ops, values, self._system_ids())
        ids = self._system_ids()
        linked = [op for op in ops if _links_changed(op, ("projects", "depends_on"))]
        touched = [ids[op.key] for op in linked]
        for chunk in _chunks(touched):
            self._s.execute(delete(system_projects).where(system_projects.c.system_id.in_(chunk)))
            self._s.execute(
                delete(system_dependencies).where(system_dependencies.c.system_id.in_(chunk))
            )
        projects = [
            {"system_id": ids[op.key], "project_id": self._org[code]}
            for op in linked
            for code in op.record["projects"]
        ]
        deps = []
        for op in linked:
            for entry in op.record["depends_on"]:
                dept, _, name = entry.rpartition("/")
                deps.append(
                    {"system_id": ids[op.key], "depends_on_id": ids[(dept or op.key[0], name)]}
                )
        for chunk in _chunks(projects):
            self._s.execute(insert(system_projects), list(chunk))
        for chunk in _chunks(deps):
            self._s.execute(insert(system_dependencies), list(chunk))

    # -- assets ------------------------------------------------------------------
    def _assets(self, ops: list[Op]) -> None:
        if not ops:
            return
        rooms = self._room_ids()
        ids: dict[tuple[str, ...], int] = {
            (s,): i for s, i in self._s.execute(select(LedgerAsset.serial, LedgerAsset.id))
        }
        self._upsert(
            LedgerAsset,
            ops,
            lambda r: {
                "serial": r["serial"],
                "kind": r["kind"].value,
                "room_id": rooms[(r["department"], r["room"])],
                "model": r["model"],
                "status": r["status"].value,
                "purchased_on": r["purchased_on"],
                "notes": r["notes"],
            },
            ids,
        )
        linked = [op for op in ops if _links_changed(op, ("systems",))]
        if not linked:
            return
        wanted = [op.key[0] for op in linked]
        ids = {}
        for chunk in _chunks(wanted):
            ids.update(
                {
                    (s,): i
                    for s, i in self._s.execute(
                        select(LedgerAsset.serial, LedgerAsset.id).where(
                            LedgerAsset.serial.in_(chunk)
                        )
                    )
                }
            )
        systems = self._system_ids()
        for chunk in _chunks([ids[op.key] for op in linked]):
            self._s.execute(delete(asset_systems).where(asset_systems.c.asset_id.in_(chunk)))
        links = [
            {"asset_id": ids[op.key], "system_id": systems[(op.record["department"], name)]}
            for op in linked
            for name in op.record["systems"]
        ]
        for chunk in _chunks(links):
            self._s.execute(insert(asset_systems), list(chunk))


def _links_changed(op: Op, fields: tuple[str, ...]) -> bool:
    if op.before is None:
        return any(op.record.get(f) for f in fields)
    return any(op.record.get(f) != op.before.get(f) for f in fields)
