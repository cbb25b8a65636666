"""Admission arithmetic over locked grant rows: increases, decreases, invariants.

Pure functions on `GrantRow` snapshots. The service hands them rows it has
locked (see `quotas.ports.QuotaStore.lock_grants`) and writes back what they
return, so the check and the write happen under the same locks.

An increase of a project's grant by `n`, drawn from a scope `S` (an ancestor,
or the pool), walks up from the project: the parent's unallocated headroom is
used first; what is missing raises the parent's own grant, and so on up to
`S`, whose limit is never raised. Therefore it fits exactly when

    n ≤ Σ free(r) over the rows from the project's parent up to S

which is the number the error shows as `free`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.vocabulary import ConflictError, ResourceClass
from quotas.model import GrantRow


@dataclass
class Shortfall(Exception):
    """Not enough headroom for one resource class (the service aggregates these)."""

    resource_class: ResourceClass
    requested: int
    granted: int
    free: int
    scope: str

    def __post_init__(self) -> None:
        super().__init__(f"{self.resource_class.value}: requested {self.requested}")


def bumped(row: GrantRow, **changes: Any) -> GrantRow:
    """A new version of `row`: the generation (the ETag) moves with every change.

    Copies the frozen row's fields directly (GrantRow has no __post_init__):
    four times faster than dataclasses.replace, and this runs while the
    admission holds its row locks.
    """
    new = object.__new__(GrantRow)
    fields = new.__dict__
    fields.update(row.__dict__)
    fields.update(changes)
    fields["generation"] = row.generation + 1
    return new


def plan_increase(segment: Sequence[GrantRow], amount: int) -> list[GrantRow]:
    """Raise the last row's grant by `amount`, drawing on the rows above it.

    `segment` runs root → leaf from the source scope (index 0, never raised)
    to the target. Returns the new versions of the rows that change (in
    segment order) or raises `Shortfall`.
    """
    if len(segment) < 2 or amount <= 0:
        raise ValueError("an increase needs a source above the target and a positive amount")
    rows = list(segment)
    changed = {len(rows) - 1}
    rows[-1] = bumped(rows[-1], granted=rows[-1].granted + amount)
    need = amount
    for i in range(len(rows) - 2, -1, -1):
        parent = rows[i]
        allocated = parent.allocated + need
        over = allocated + parent.consumed - parent.limit
        changed.add(i)
        if over <= 0:
            rows[i] = bumped(parent, allocated=allocated)
            break
        if i == 0:
            target = segment[-1]
            raise Shortfall(
                target.resource_class,
                requested=amount,
                granted=target.granted,
                free=sum(max(0, r.free) for r in segment[:-1]),
                scope=segment[0].node.code,
            )
        rows[i] = bumped(parent, allocated=allocated, granted=parent.granted + over)
        need = over
    return [rows[i] for i in sorted(changed)]


def plan_decrease(
    parent: GrantRow, node: GrantRow, amount: int, *, usage: int, force: bool
) -> tuple[GrantRow, GrantRow, bool]:
    """Lower `node`'s grant by `amount` (> 0) and give it back to `parent`.

    Never below what the node's children hold plus its live reservations;
    below the provider-observed usage only with `force` (the third value
    says whether that happened, so it can be recorded).
    """
    new = node.granted - amount
    floor = node.allocated + node.consumed
    extra = {
        "node": node.node.code,
        "resource_class": node.resource_class.value,
        "requested": new,
        "granted": node.granted,
        "allocated": node.allocated,
        "consumed": node.consumed,
        "usage": usage,
    }
    if new < floor:
        raise ConflictError(
            f"cannot lower {node.resource_class.value} of {node.node.code!r} to {new}: "
            f"its projects and reservations hold {floor}",
            code="quota.below_allocated",
            extra=extra,
        )
    if new < usage and not force:
        raise ConflictError(
            f"cannot lower {node.resource_class.value} of {node.node.code!r} to {new}: "
            f"the provider reports {usage} in use (use force to lower it anyway)",
            code="quota.below_usage",
            extra=extra,
        )
    if parent.allocated < amount:
        raise RuntimeError(f"derived sum of {parent.node.code!r} is below a child's grant")
    return (
        bumped(parent, allocated=parent.allocated - amount),
        bumped(node, granted=new),
        new < usage,
    )


def exceeded_error(cloud: str, node: str, shortfalls: Sequence[Shortfall]) -> ConflictError:
    """One 409 listing, per resource class, what was requested, granted and free."""
    parts = "; ".join(
        f"{s.resource_class.value}: requested {s.requested}, granted {s.granted}, "
        f"free {s.free} up to {s.scope!r}"
        for s in shortfalls
    )
    return ConflictError(
        f"not enough headroom on {cloud!r} for {node!r}: {parts}",
        code="quota.exceeded",
        extra={
            "cloud": cloud,
            "node": node,
            "scope": shortfalls[0].scope,
            "requested": {s.resource_class.value: s.requested for s in shortfalls},
            "granted": {s.resource_class.value: s.granted for s in shortfalls},
            "free": {s.resource_class.value: s.free for s in shortfalls},
        },
    )


def violations(
    rows: Iterable[GrantRow],
    parent_of: Mapping[int, int | None],
    live_reserved: Mapping[tuple[ResourceClass, int], int] | None = None,
) -> list[str]:
    """Every broken invariant of a cloud's grant trees, in words (empty when sound).

    `parent_of` maps org node id → parent id; `live_reserved` maps
    (class, project id) → Σ held and committed reservations (the ledger).
    Checks the invariants *and* that the derived sums equal the ledger.
    """
    by_key = {(r.resource_class, r.node.id): r for r in rows}
    children: dict[tuple[ResourceClass, int], int] = defaultdict(int)
    problems = []
    for (cls, node_id), row in by_key.items():
        if row.is_pool:
            continue
        parent = parent_of.get(node_id)
        if parent is None or (cls, parent) not in by_key:
            if row.granted:
                problems.append(f"{cls.value}@{row.node.code}: granted with no parent row")
            continue
        children[(cls, parent)] += row.granted
    for key, row in sorted(by_key.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        name = f"{key[0].value}@{row.node.code}"
        if row.allocated != children.get(key, 0):
            problems.append(f"{name}: allocated {row.allocated} ≠ Σ children {children[key]}")
        if live_reserved is not None and row.consumed != live_reserved.get(key, 0):
            ledger = live_reserved.get(key, 0)
            problems.append(f"{name}: consumed {row.consumed} ≠ ledger {ledger}")
        if row.allocated + row.consumed > row.limit:
            problems.append(
                f"{name}: allocated {row.allocated} + consumed {row.consumed} > {row.limit}"
            )
        if min(row.granted, row.allocated, row.consumed) < 0:
            problems.append(f"{name}: negative amount")
    return problems
