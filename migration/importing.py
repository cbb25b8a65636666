"""Planning an import: sheets → per-row outcomes and the records to write.

    read_sheets (sheets.py) → prepare (mapping.py: headers → fields, rows parsed)
        → plan_import (references resolved against a Catalog, rules checked)
        → Plan: one RowOutcome per row, one Op per created or changed record

Sheets are planned waves → rooms → systems → assets, so a row may refer to a
room or a system defined further down the same file. Rules checked per row
are those of the API: the new-system gate, a target that fits the
architecture requirement, a wave whose scope covers the department, legal
room and asset status changes, no migration state change (states move only
through transitions, which need evidence or approval), and room retirement
against the file's final picture. The store writes the plan only when no row
has a problem; a dry run only reports it.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from migration.catalog import (
    ASSET_DEFAULTS,
    ASSET_FIELDS,
    ROOM_DEFAULTS,
    ROOM_FIELDS,
    SYSTEM_DEFAULTS,
    SYSTEM_FIELDS,
    WAVE_FIELDS,
    Catalog,
    Record,
)
from migration.columns import SheetKind
from migration.mapping import MappedSheet
from migration.model import (
    FINISHED_STATES,
    GONE_ASSET_STATUSES,
    IMPORTABLE_NEW_STATES,
    Classification,
    Exemption,
    RoomStatus,
    SystemState,
    new_system_gate,
    target_problem,
)
from migration.report import Action, RowOutcome, RowProblem
from migration.rooms import asset_transition_problem, retirement_blockers, room_transition_problem
from migration.rows import ParsedRow

ORDER = (SheetKind.WAVES, SheetKind.ROOMS, SheetKind.SYSTEMS, SheetKind.ASSETS)
_FIELDS = {
    SheetKind.WAVES: WAVE_FIELDS,
    SheetKind.ROOMS: ROOM_FIELDS,
    SheetKind.SYSTEMS: SYSTEM_FIELDS,
    SheetKind.ASSETS: ASSET_FIELDS,
}
_NEEDS_TARGET = frozenset(
    {SystemState.PLANNED, SystemState.MIGRATING, SystemState.CUT_OVER, SystemState.ACCEPTED}
)


@dataclass
class Op:
    kind: SheetKind
    action: Action
    key: tuple[str, ...]
    record: Record
    before: Record | None


@dataclass
class Plan:
    ops: list[Op] = field(default_factory=list)
    outcomes: list[RowOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(not o.problems for o in self.outcomes)


@dataclass
class _Pending:
    sheet: MappedSheet
    row: ParsedRow
    key: tuple[str, ...] | None
    record: Record | None
    before: Record | None
    problems: list[tuple[str, str]]


class _Planner:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
        self.plan = Plan()
        self.seen: dict[tuple[SheetKind, tuple[str, ...]], int] = {}
        self.retiring: list[tuple[tuple[str, str], RowOutcome, str]] = []

    # -- the walk ------------------------------------------------------------
    def run(self, sheets: Sequence[MappedSheet]) -> Plan:
        for kind in ORDER:
            pending = [self._pending(s, row) for s in sheets if s.kind is kind for row in s.rows]
            if kind is SheetKind.SYSTEMS:
                self._resolve_dependencies(pending)
            for p in pending:
                self._finish(p)
        self._check_retirements()
        return self.plan

    def _pending(self, sheet: MappedSheet, row: ParsedRow) -> _Pending:
        problems = [(p.field, p.message) for p in row.problems]
        handler = {
            SheetKind.WAVES: self._wave,
            SheetKind.ROOMS: self._room,
            SheetKind.SYSTEMS: self._system,
            SheetKind.ASSETS: self._asset,
        }[sheet.kind]
        key, record, before = handler(row.values, problems)
        if key is not None:
            first = self.seen.setdefault((sheet.kind, key), row.line)
            if first != row.line:
                key_field = "serial" if sheet.kind is SheetKind.ASSETS else "name"
                if sheet.kind is SheetKind.WAVES:
                    key_field = "code"
                problems.append((key_field, f"{'/'.join(key)} repeats row {first}"))
        return _Pending(sheet, row, key, record, before, problems)

    def _finish(self, p: _Pending) -> None:
        kind = p.sheet.kind
        label = "/".join(p.key) if p.key else ""
        outcome = RowOutcome(p.sheet.title, p.row.line, kind.value, label, Action.ERROR)
        outcome.problems = [
            RowProblem(p.sheet.title, p.row.line, p.sheet.labels.get(f, f), m)
            for f, m in p.problems
        ]
        self.plan.outcomes.append(outcome)
        if outcome.problems or p.key is None or p.record is None:
            return
        if p.before is None:
            outcome.action = Action.CREATE
        else:
            outcome.changed = [f for f in _FIELDS[kind] if p.record.get(f) != p.before.get(f)]
            outcome.action = Action.UPDATE if outcome.changed else Action.UNCHANGED
        if outcome.action is not Action.UNCHANGED:
            self.plan.ops.append(Op(kind, outcome.action, p.key, p.record, p.before))
        self._register(kind, p.key, p.record)
        newly_retired = p.record.get("status") is RoomStatus.RETIRED and (
            p.before is None or p.before["status"] is not RoomStatus.RETIRED
        )
        if kind is SheetKind.ROOMS and newly_retired:
            status_column = p.sheet.labels.get("status", "")
            self.retiring.append(((p.key[0], p.key[1]), outcome, status_column))

    def _register(self, kind: SheetKind, key: tuple[str, ...], record: Record) -> None:
        if kind is SheetKind.WAVES:
            self.c.waves[key[0]] = record
        elif kind is SheetKind.ROOMS:
            self.c.rooms[(key[0], key[1])] = record
        elif kind is SheetKind.SYSTEMS:
            self.c.systems[(key[0], key[1])] = record
        else:
            self.c.assets[key[0]] = record

    @staticmethod
    def _merge(
        before: Record | None, defaults: Record, values: dict[str, Any], skip: set[str]
    ) -> Record:
        record = dict(before) if before is not None else dict(defaults)
        record.update({k: v for k, v in values.items() if k not in skip})
        return record

    # -- one row of each kind --------------------------------------------------
    def _wave(self, v: dict[str, Any], problems: list[tuple[str, str]]) -> Any:
        code = v.get("code")
        scope_text = v.get("scope")
        if code is None:
            return None, None, None
        if scope_text is not None:
            ref = self.c.org.get(scope_text)
            if ref is None or ref.level == "project" or not self.c.can_see_node(ref.path):
                problems.append(
                    ("scope", f"unknown province, prefecture or department {scope_text!r}")
                )
            elif not self.c.can_write(ref.path):
                problems.append(("scope", f"{scope_text!r} is outside the scopes you may change"))
        before = self.c.waves.get(code)
        if before is not None and not self.c.can_write(self.c.path_of(before["scope"])):
            problems.append(
                ("code", f"wave {code!r} belongs to {before['scope']!r}, outside your scopes")
            )
        return (code,), self._merge(before, {}, v, set()), before

    def _room(self, v: dict[str, Any], problems: list[tuple[str, str]]) -> Any:
        dept, name = self._department(v, problems), v.get("name")
        if dept is None or name is None:
            return None, None, None
        before = self.c.rooms.get((dept, name))
        record = self._merge(before, {**ROOM_DEFAULTS, "department": dept}, v, set())
        record["department"] = dept
        if before is not None:
            problem = room_transition_problem(before["status"], record["status"])
            if problem:
                problems.append(("status", problem))
        return (dept, name), record, before

    def _system(self, v: dict[str, Any], problems: list[tuple[str, str]]) -> Any:  # noqa: PLR0912
        dept, name = self._department(v, problems), v.get("name")
        if dept is None or name is None:
            return None, None, None
        before = self.c.systems.get((dept, name))
        skip = {"location", "state", "depends_on"}
        r = self._merge(before, {**SYSTEM_DEFAULTS, "department": dept}, v, skip)
        r["department"] = dept
        if "projects" in v:
            r["projects"] = tuple(sorted(v["projects"]))
        if "location" in v:
            r["room"], r["current_cloud"] = self._location(dept, v["location"], problems)
        target = None
        if r["target_cloud"] is not None:
            target = self.c.cloud(r["target_cloud"])
            if target is None:
                problems.append(("target_cloud", f"unknown cloud {r['target_cloud']!r}"))
            else:
                r["target_cloud"] = target.code
                if problem := target_problem(r["architecture"], target):
                    problems.append(("target_cloud", problem))
        if r["wave"] is not None:
            wave = self.c.waves.get(r["wave"])
            if wave is None:
                problems.append(("wave", f"unknown wave {r['wave']!r}"))
            elif not self.c.path_of(dept).startswith(self.c.path_of(wave["scope"])):
                problems.append(
                    ("wave", f"wave {r['wave']!r} covers {wave['scope']!r}, not {dept!r}")
                )
        state = v.get("state")
        if before is None and state is not None:
            if state not in IMPORTABLE_NEW_STATES:
                problems.append(
                    ("state", f"a new system starts inventoried or assessed, not {state}")
                )
            else:
                r["state"] = state
        elif before is not None and state is not None and state != before["state"]:
            problems.append(
                ("state", f"the ledger says {before['state']}; states change only through "
                 "transitions (yunguan ledger transition, POST …/transitions)")
            )  # fmt: skip
        if r["state"] in _NEEDS_TARGET and r["target_cloud"] is None:
            problems.append(("target_cloud", f"a {r['state']} system needs a target cloud"))
        if r["state"] is SystemState.PLANNED and r["wave"] is None:
            problems.append(("wave", "a planned system needs a wave"))
        if r["classification"] is Classification.CLASSIFIED and r["state"] in _NEEDS_TARGET:
            problems.append(("classification", f"a {r['state']} system cannot be classified"))
        for code in r["projects"]:
            if problem := self.c.project_of(code, dept):
                problems.append(("projects", problem))
        exemption = Exemption(r["exemption_reason"] or "", r["exemption_approver"] or "")
        if gate := new_system_gate(r["origin"], r["classification"], target, exemption):
            problems.append(("target_cloud", gate))
        r["depends_on"] = v.get("depends_on", before["depends_on"] if before else ())
        return (dept, name), r, before

    def _location(
        self, dept: str, text: str | None, problems: list[tuple[str, str]]
    ) -> tuple[str | None, str | None]:
        """A room of the department wins over a cloud of the same name."""
        if text is None:
            return None, None
        room = self.c.rooms.get((dept, text))
        if room is not None:
            return text, None
        cloud = self.c.cloud(text)
        if cloud is not None:
            return None, cloud.code
        problems.append(
            ("location", f"no room {text!r} in {dept!r} and no cloud of that code or name")
        )
        return None, None

    def _resolve_dependencies(self, pending: list[_Pending]) -> None:
        """Runs once every system row is known: a system may depend on a later row."""
        known = set(self.c.systems) | {
            p.key for p in pending if p.key is not None and len(p.key) == 2
        }
        for p in pending:
            if p.record is None or p.key is None:
                continue
            dept = p.key[0]
            canonical = []
            for entry in p.record["depends_on"]:
                other_dept, _, other = entry.rpartition("/")
                other_dept = other_dept or dept
                ref, _ = self.c.department(other_dept)
                other_dept = ref.code if ref is not None else other_dept
                if (other_dept, other) not in known:
                    p.problems.append(
                        ("depends_on", f"no system {entry!r} in the ledger or this file")
                    )
                elif (other_dept, other) == tuple(p.key):
                    p.problems.append(("depends_on", "a system cannot depend on itself"))
                else:
                    canonical.append(other if other_dept == dept else f"{other_dept}/{other}")
            p.record["depends_on"] = tuple(sorted(canonical))

    def _asset(self, v: dict[str, Any], problems: list[tuple[str, str]]) -> Any:
        serial, dept = v.get("serial"), self._department(v, problems)
        if serial is None or dept is None:
            return None, None, None
        before = self.c.assets.get(serial)
        if before is not None and before["department"] != dept:
            ref = self.c.org.get(before["department"])
            if ref is None or not self.c.can_write(ref.path):
                problems.append(
                    ("serial", f"serial {serial!r} is registered to another department")
                )
        r = self._merge(before, {**ASSET_DEFAULTS, "serial": serial}, v, set())
        r["department"] = dept
        if "systems" in v:
            r["systems"] = tuple(sorted(v["systems"]))
        if before is None and r.get("kind") is None and all(f != "kind" for f, _ in problems):
            problems.append(("kind", "is required"))
        room = self.c.rooms.get((dept, r["room"])) if r.get("room") else None
        if room is None:
            problems.append(
                ("room", f"no room {r.get('room')!r} in {dept!r} (in the ledger or this file)")
            )
        elif room["status"] is RoomStatus.RETIRED and r["status"] not in GONE_ASSET_STATUSES:
            problems.append(
                ("room", f"room {r['room']!r} is retired; a {r['status']} asset cannot be in it")
            )
        for name in r["systems"]:
            if (dept, name) not in self.c.systems:
                problems.append(("systems", f"no system {name!r} in {dept!r}"))
        if before is not None and (
            problem := asset_transition_problem(before["status"], r["status"])
        ):
            problems.append(("status", problem))
        return (serial,), r, before

    def _department(self, v: dict[str, Any], problems: list[tuple[str, str]]) -> str | None:
        text = v.get("department")
        if text is None:
            return None
        ref, problem = self.c.department(text)
        if problem is not None:
            problems.append(("department", problem))
        return ref.code if ref is not None else None

    # -- after every row -------------------------------------------------------
    def _check_retirements(self) -> None:
        for (dept, name), outcome, column in self.retiring:
            systems = [
                (s["name"], s["state"])
                for (d, _), s in self.c.systems.items()
                if d == dept and s["room"] == name
            ]
            assets = [
                (a["serial"], a["status"])
                for a in self.c.assets.values()
                if a["department"] == dept and a["room"] == name
            ]
            blockers = retirement_blockers(systems, assets)
            if blockers:
                text = "; ".join(b.describe() for b in blockers[:10])
                more = f" and {len(blockers) - 10} more" if len(blockers) > 10 else ""
                outcome.problems.append(
                    RowProblem(outcome.sheet, outcome.row, column, f"cannot retire: {text}{more}")
                )
                outcome.action = Action.ERROR
        # a system placed in a room retired by this file (or before) is caught too
        for outcome in self.plan.outcomes:
            if outcome.kind == SheetKind.SYSTEMS.value and not outcome.problems:
                dept, _, name = outcome.key.partition("/")
                s = self.c.systems[(dept, name)]
                room = self.c.rooms.get((dept, s["room"])) if s["room"] else None
                if (
                    room is not None
                    and room["status"] is RoomStatus.RETIRED
                    and s["state"] not in FINISHED_STATES
                ):
                    outcome.problems.append(
                        RowProblem(outcome.sheet, outcome.row, "", f"room {s['room']!r} is retired")
                    )
                    outcome.action = Action.ERROR


def plan_import(sheets: Sequence[MappedSheet], catalog: Catalog) -> Plan:
    """Plans every row; updates `catalog` to the picture after the import."""
    return _Planner(catalog).run(sheets)
