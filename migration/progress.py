"""Progress arithmetic: the "应上尽上" rate, wave burn-down and "behind plan".

    rate = accepted / in scope
    in scope = non-classified systems that are neither exempted nor decommissioned

Classified (涉密) systems never count. Exempted and decommissioned systems
leave the denominator — an approved exemption means the system is not one
that "should go up" — but both are reported next to the rate, so a rate
bought with exemptions is visible. A wave is behind plan when its end date
has passed with systems still unfinished (not accepted, exempted or
decommissioned). The ledger store feeds this module counts aggregated in
SQL; the API, the CLI and the export print what it returns.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from migration.model import FINISHED_STATES, Classification, SystemState, Wave

_NOT_STARTED = frozenset({SystemState.INVENTORIED, SystemState.ASSESSED})
MAX_BURNDOWN_POINTS = 120


@dataclass(frozen=True)
class StateCount:
    """Systems of one department in one (classification, state), counted in SQL."""

    department: str
    department_name: str
    parent: str  # the prefecture, or the province for provincial departments
    parent_name: str
    classification: Classification
    state: SystemState
    count: int


@dataclass
class Rate:
    scope: str
    name: str
    level: str  # "department", "prefecture", "province" or "total"
    systems: int = 0
    classified: int = 0
    exempted: int = 0
    decommissioned: int = 0
    in_scope: int = 0
    accepted: int = 0
    in_progress: int = 0  # planned, migrating, cut-over, rolled-back
    not_started: int = 0  # inventoried, assessed

    @property
    def rate(self) -> float | None:
        """accepted / in scope; None when nothing is in scope."""
        return round(self.accepted / self.in_scope, 4) if self.in_scope else None

    def add(self, c: StateCount) -> None:
        self.systems += c.count
        if c.classification is Classification.CLASSIFIED:
            self.classified += c.count
        elif c.state is SystemState.EXEMPTED:
            self.exempted += c.count
        elif c.state is SystemState.DECOMMISSIONED:
            self.decommissioned += c.count
        else:
            self.in_scope += c.count
            if c.state is SystemState.ACCEPTED:
                self.accepted += c.count
            elif c.state in _NOT_STARTED:
                self.not_started += c.count
            else:
                self.in_progress += c.count


@dataclass(frozen=True)
class Rates:
    total: Rate
    by_parent: list[Rate]  # prefectures (and the province, for its own departments)
    by_department: list[Rate]


def rates(
    counts: Iterable[StateCount], *, total_scope: str, total_name: str, province: str = ""
) -> Rates:
    """Rolls department counts up to their prefecture (or the province, for the
    province's own departments) and to a total over everything counted."""
    total = Rate(total_scope, total_name, "total")
    parents: dict[str, Rate] = {}
    departments: dict[str, Rate] = {}
    for c in counts:
        total.add(c)
        parent_level = "province" if c.parent == province else "prefecture"
        parents.setdefault(c.parent, Rate(c.parent, c.parent_name, parent_level)).add(c)
        departments.setdefault(
            c.department, Rate(c.department, c.department_name, "department")
        ).add(c)
    return Rates(
        total=total,
        by_parent=[parents[k] for k in sorted(parents)],
        by_department=[departments[k] for k in sorted(departments)],
    )


@dataclass(frozen=True)
class WaveMember:
    state: SystemState
    finished_on: date | None  # the day it reached a finished state, if it has


@dataclass(frozen=True)
class BurnPoint:
    day: date
    ideal: float  # straight line from all systems at the start to none at the end
    remaining: int


@dataclass
class WaveProgress:
    wave: Wave
    total: int
    finished: int
    behind_plan: bool
    burndown: list[BurnPoint] = field(default_factory=list)

    @property
    def unfinished(self) -> int:
        return self.total - self.finished


def _remaining_on(day: date, members: list[WaveMember]) -> int:
    return sum(
        1
        for m in members
        if m.state not in FINISHED_STATES or m.finished_on is None or m.finished_on > day
    )


def wave_progress(wave: Wave, members: Iterable[WaveMember], today: date) -> WaveProgress:
    """Counts, the behind-plan flag and a burn-down from the wave's start to today
    (or its end, when it finished on time); at most `MAX_BURNDOWN_POINTS` points."""
    members = list(members)
    finished = sum(1 for m in members if m.state in FINISHED_STATES)
    unfinished = len(members) - finished
    progress = WaveProgress(
        wave=wave,
        total=len(members),
        finished=finished,
        behind_plan=wave.is_past(today) and unfinished > 0,
    )
    if today < wave.starts_on:
        return progress
    last = today if unfinished else min(today, wave.ends_on)
    span = max((wave.ends_on - wave.starts_on).days, 1)
    days = (last - wave.starts_on).days
    step = max(1, math.ceil((days + 1) / MAX_BURNDOWN_POINTS))
    offsets = list(range(0, days + 1, step))
    if offsets[-1] != days:
        offsets.append(days)
    for offset in offsets:
        day = wave.starts_on + timedelta(days=offset)
        ideal = max(0.0, len(members) * (1 - offset / span))
        progress.burndown.append(BurnPoint(day, round(ideal, 1), _remaining_on(day, members)))
    return progress


def behind_plan(progress: Iterable[WaveProgress]) -> list[WaveProgress]:
    return [p for p in progress if p.behind_plan]
