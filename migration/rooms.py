"""Server rooms (机房) and IT assets: their status tables and the retirement rule.

A room goes `active → consolidating → retired` (and back from consolidating to
active while plans change); `retired` is final and allowed only when every
system in the room is accepted, exempted or decommissioned and every asset
is retired or disposed. `retirement_blockers` lists what stands in the way,
so a department sees its remaining work, not just "no". Assets go
`in-use ⇄ idle → retired → disposed`.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.vocabulary import ConflictError
from migration.model import (
    FINISHED_STATES,
    GONE_ASSET_STATUSES,
    AssetStatus,
    RoomStatus,
    SystemState,
)

ROOM_TRANSITIONS: dict[RoomStatus, frozenset[RoomStatus]] = {
    RoomStatus.ACTIVE: frozenset({RoomStatus.CONSOLIDATING}),
    RoomStatus.CONSOLIDATING: frozenset({RoomStatus.ACTIVE, RoomStatus.RETIRED}),
    RoomStatus.RETIRED: frozenset(),
}

ASSET_TRANSITIONS: dict[AssetStatus, frozenset[AssetStatus]] = {
    AssetStatus.IN_USE: frozenset({AssetStatus.IDLE, AssetStatus.RETIRED}),
    AssetStatus.IDLE: frozenset({AssetStatus.IN_USE, AssetStatus.RETIRED}),
    AssetStatus.RETIRED: frozenset({AssetStatus.DISPOSED}),
    AssetStatus.DISPOSED: frozenset(),
}


@dataclass(frozen=True)
class Blocker:
    """One thing that keeps a room open."""

    kind: str  # "system" or "asset"
    key: str  # the system's name, the asset's serial
    state: str

    def describe(self) -> str:
        done = (
            "accepted, exempted or decommissioned"
            if self.kind == "system"
            else "retired or disposed"
        )
        return f"{self.kind} {self.key!r} is {self.state} (needs {done})"


def retirement_blockers(
    systems: Iterable[tuple[str, SystemState]], assets: Iterable[tuple[str, AssetStatus]]
) -> list[Blocker]:
    """What keeps a room from retiring: unfinished systems first, then live assets."""
    blockers = [
        Blocker("system", name, state.value)
        for name, state in sorted(systems)
        if state not in FINISHED_STATES
    ]
    blockers += [
        Blocker("asset", serial, status.value)
        for serial, status in sorted(assets)
        if status not in GONE_ASSET_STATUSES
    ]
    return blockers


def room_transition_problem(current: RoomStatus, to: RoomStatus) -> str | None:
    if to == current or to in ROOM_TRANSITIONS[current]:
        return None
    allowed = ", ".join(sorted(s.value for s in ROOM_TRANSITIONS[current])) or "none: it is final"
    return f"a room cannot go from {current.value} to {to.value} (allowed: {allowed})"


def check_room_transition(
    label: str, current: RoomStatus, to: RoomStatus, blockers: list[Blocker]
) -> None:
    problem = room_transition_problem(current, to)
    if problem is not None:
        raise ConflictError(
            f"room {label}: {problem}",
            code="migration.room_illegal_transition",
            extra={"from": current.value, "to": to.value},
        )
    if to is RoomStatus.RETIRED and current is not RoomStatus.RETIRED and blockers:
        raise ConflictError(
            f"room {label} cannot retire: {len(blockers)} blocker(s): "
            + "; ".join(b.describe() for b in blockers[:10]),
            code="migration.room_not_retirable",
            extra={"blockers": [b.__dict__ for b in blockers]},
        )


def asset_transition_problem(current: AssetStatus, to: AssetStatus) -> str | None:
    if to == current or to in ASSET_TRANSITIONS[current]:
        return None
    allowed = ", ".join(sorted(s.value for s in ASSET_TRANSITIONS[current])) or "none: it is final"
    return f"an asset cannot go from {current.value} to {to.value} (allowed: {allowed})"


def check_asset_transition(label: str, current: AssetStatus, to: AssetStatus) -> None:
    problem = asset_transition_problem(current, to)
    if problem is not None:
        raise ConflictError(
            f"asset {label}: {problem}",
            code="migration.asset_illegal_transition",
            extra={"from": current.value, "to": to.value},
        )
