"""Use cases on pools and grants: declare capacity, set or raise a grant, record
observed usage, read the trees. Called by the API routes and the CLI.

Each function runs inside the caller's transaction (the `store` is bound to
it), never commits, and returns the new rows plus `Change`s for the audit log.
The caller retries the whole transaction on a lost race
(`controlplane.db.retry.run_in_transaction`); callers see ConflictError only
for real conflicts: no headroom, a stale generation, a wrong state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controlplane.vocabulary import ConflictError, InvalidInputError, OrgLevel, ResourceClass
from quotas.admission import Shortfall, bumped, exceeded_error, plan_decrease, plan_increase
from quotas.inputs import check_amount, check_supported, parse_class
from quotas.model import (
    Actor,
    Change,
    CloudRef,
    GrantRow,
    NodeRef,
    RequestItem,
)
from quotas.ports import QuotaStore

MAX_OVERSUBSCRIPTION = 10.0


@dataclass(frozen=True)
class GrantResult:
    cloud: CloudRef
    node: NodeRef
    rows: tuple[GrantRow, ...]  # the target's rows after the change, one per class
    changes: tuple[Change, ...]
    forced: bool = False


def utc(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def owner_index(cloud: CloudRef, chain: Sequence[NodeRef]) -> int:
    """Where the cloud's owner (the pool) sits in `chain`; the node must be below it."""
    for i, node in enumerate(chain):
        if node.id == cloud.owner.id:
            return i
    raise InvalidInputError(
        f"{chain[-1].code!r} is not under {cloud.owner.code!r}, which owns cloud {cloud.code!r}",
        code="quota.out_of_scope",
        extra={"node": chain[-1].code, "cloud": cloud.code, "owner": cloud.owner.code},
    )


def check_generation(row: GrantRow, expected: int | None) -> None:
    if expected is not None and row.generation != expected:
        raise ConflictError(
            f"{row.resource_class.value} of {row.node.code!r} changed "
            f"(generation {row.generation}, expected {expected}); re-read and retry",
            code="quota.generation_mismatch",
            extra={"expected": expected, "generation": row.generation},
        )


@dataclass(frozen=True)
class Admission:
    before: tuple[GrantRow, ...]
    after: tuple[GrantRow, ...]
    forced: bool


def admit(
    store: QuotaStore,
    cloud: CloudRef,
    chain: Sequence[NodeRef],
    source: int,
    items: Sequence[RequestItem],
    now: datetime,
    *,
    force: bool = False,
    expected_generation: int | None = None,
) -> Admission:
    """Move the grants of `chain[-1]` to what `items` ask, in one locked step.

    Increases draw on `chain[source]` and every row below it (see
    `quotas.admission`); decreases give back to the parent. All classes or
    none: every shortfall is collected into one `quota.exceeded` error.
    """
    segment = chain[source:]
    locked = store.lock_grants(cloud, [(i.resource_class, segment) for i in items])
    writes: list[GrantRow] = []
    before: list[GrantRow] = []
    after: list[GrantRow] = []
    shortfalls: list[Shortfall] = []
    forced = False
    for item, rows in zip(items, locked, strict=True):
        current = rows[-1]
        check_generation(current, expected_generation)
        delta = item.amount - current.granted if item.absolute else item.amount
        new: list[GrantRow] = []
        if delta > 0:
            try:
                new = plan_increase(rows, delta)
            except Shortfall as exc:
                shortfalls.append(exc)
                continue
        elif delta < 0:
            usage = store.usage(cloud, item.resource_class, chain[-1])
            parent, node, was_forced = plan_decrease(
                rows[-2], current, -delta, usage=usage, force=force
            )
            new, forced = [parent, node], forced or was_forced
        writes.extend(new)
        before.append(current)
        after.append(new[-1] if new else current)
    if shortfalls:
        raise exceeded_error(cloud.code, chain[-1].code, shortfalls)
    if writes:
        saved = {(r.resource_class, r.node.id): r for r in store.save_grants(writes, now)}
        after = [saved.get((r.resource_class, r.node.id), r) for r in after]
    return Admission(tuple(before), tuple(after), forced)


def emit_grant_changed(
    store: QuotaStore,
    actor: Actor,
    cloud: CloudRef,
    node: NodeRef,
    classes: Sequence[ResourceClass],
    **extra: Any,
) -> None:
    """The outbox row of a grant change. It names ids only (the relay re-reads
    the grants), so it is written *before* the row locks: the serialised
    section then holds just the locked check, one UPDATE and the commit."""
    store.emit(
        "quota.grant.changed",
        "quota_grant",
        f"{cloud.code}/{node.code}",
        {
            "cloud": cloud.code,
            "node": node.code,
            "level": node.level.value,
            "classes": [c.value for c in classes],
            "by": actor.id,
            **extra,
        },
    )


def _grant_id(cloud: CloudRef, node: NodeRef, cls: ResourceClass) -> str:
    return f"{cloud.code}/{node.code}/{cls.value}"


def _changes(
    action: str, cloud: CloudRef, node: NodeRef, adm: Admission, **note: Any
) -> tuple[Change, ...]:
    return tuple(
        Change(
            action,
            "quota_grant",
            _grant_id(cloud, node, b.resource_class),
            node.path,
            b.values() if b.generation > 0 else None,
            {**a.values(), **note},
        )
        for b, a in zip(adm.before, adm.after, strict=True)
        if a != b
    )


def set_capacity(
    store: QuotaStore,
    actor: Actor,
    cloud_code: str,
    resource_class: str | ResourceClass,
    total: int,
    *,
    reserved: int = 0,
    oversubscription: float | None = None,
    source: str = "declared",
    force: bool = False,
    expected_generation: int | None = None,
    now: datetime | None = None,
) -> GrantResult:
    """Declare (or record an observed) pool capacity for (cloud, class).

    Lowering it below what is already granted from the pool is refused
    unless `force` — it would break Σ top-level grants ≤ pool.
    """
    now = utc(now)
    cls = parse_class(resource_class, "resource_class")
    cloud = store.cloud(cloud_code)
    check_supported(cloud, [cls])
    check_amount(total, "total", allow_zero=True)
    check_amount(reserved, "reserved", allow_zero=True)
    if source not in {"declared", "observed"}:
        raise InvalidInputError(
            f"source {source!r}: 'declared' or 'observed'", code="quota.invalid_source"
        )
    if oversubscription is not None and not 1.0 <= oversubscription <= MAX_OVERSUBSCRIPTION:
        raise InvalidInputError(
            f"oversubscription {oversubscription} must be between 1.0 and {MAX_OVERSUBSCRIPTION}",
            code="quota.invalid_amount",
        )
    store.emit(
        "quota.capacity.changed",
        "quota_pool",
        f"{cloud.code}/{cls.value}",
        {"cloud": cloud.code, "resource_class": cls.value, "by": actor.id, "force": force},
    )
    (pool,) = store.lock_grants(cloud, [(cls, [cloud.owner])], create_top=True)[0]
    check_generation(pool, expected_generation)
    new = bumped(
        pool,
        total=total,
        capacity_reserved=reserved,
        oversubscription=pool.oversubscription if oversubscription is None else oversubscription,
        capacity_source=source,
    )
    if new.limit < new.allocated and not force:
        raise ConflictError(
            f"pool {cloud.code}/{cls.value} would allow {new.limit} but "
            f"{new.allocated} is already granted from it (use force to record it anyway)",
            code="quota.capacity_below_allocated",
            extra={"limit": new.limit, "allocated": new.allocated},
        )
    saved = store.save_pool(new, now)
    change = Change(
        "quota.capacity.set",
        "quota_pool",
        f"{cloud.code}/{cls.value}",
        cloud.owner.path,
        pool.values() if pool.generation > 0 else None,
        saved.values(),
    )
    return GrantResult(cloud, cloud.owner, (saved,), (change,), forced=new.limit < new.allocated)


def set_grant(
    store: QuotaStore,
    actor: Actor,
    node_code: str,
    cloud_code: str,
    resource_class: str | ResourceClass,
    amount: int,
    *,
    expected_generation: int | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> GrantResult:
    """Set the grant of one node to `amount`, drawing only on its parent's headroom.

    `expected_generation` is the If-Match of the node's grant (its ETag).
    `force` allows going below the provider-observed usage (recorded).
    """
    now = utc(now)
    cls = parse_class(resource_class, "resource_class")
    check_amount(amount, "amount", allow_zero=True)
    cloud, chain = store.locate(cloud_code, node_code)
    check_supported(cloud, [cls])
    top = owner_index(cloud, chain)
    if top == len(chain) - 1:
        raise InvalidInputError(
            f"{node_code!r} owns cloud {cloud.code!r} and holds its pool: declare capacity instead",
            code="quota.pool_root",
        )
    node = chain[-1]
    emit_grant_changed(store, actor, cloud, node, [cls], force=force)
    adm = admit(
        store,
        cloud,
        chain,
        len(chain) - 2,
        [RequestItem(cls, amount, absolute=True)],
        now,
        force=force,
        expected_generation=expected_generation,
    )
    changes = _changes("quota.grant.set", cloud, node, adm, forced_below_usage=adm.forced)
    return GrantResult(cloud, node, adm.after, changes, forced=adm.forced)


def raise_grant(
    store: QuotaStore,
    actor: Actor,
    node_code: str,
    cloud_code: str,
    amounts: Mapping[str | ResourceClass, int],
    *,
    draw_from: str | None = None,
    now: datetime | None = None,
) -> GrantResult:
    """Raise a node's grants by `amounts`, drawing on every scope up to `draw_from`.

    `draw_from` (default: the parent) is an ancestor at or below the cloud's
    owner; intermediate grants are raised as needed, its own limit never.
    """
    now = utc(now)
    items = delta_items(amounts)
    cloud, chain = store.locate(cloud_code, node_code)
    check_supported(cloud, [i.resource_class for i in items])
    source = source_index(cloud, chain, draw_from)
    node = chain[-1]
    emit_grant_changed(store, actor, cloud, node, [i.resource_class for i in items])
    adm = admit(store, cloud, chain, source, items, now)
    return GrantResult(cloud, node, adm.after, _changes("quota.grant.raise", cloud, node, adm))


def delta_items(amounts: Mapping[str | ResourceClass, int]) -> list[RequestItem]:
    if not amounts:
        raise InvalidInputError("no amounts given", code="quota.invalid_amount")
    items = []
    for key, amount in amounts.items():
        cls = parse_class(key, f"amounts.{key}")
        check_amount(amount, f"amounts.{cls.value}", allow_zero=False)
        items.append(RequestItem(cls, amount))
    return sorted(items, key=lambda i: i.resource_class.value)


def source_index(cloud: CloudRef, chain: Sequence[NodeRef], draw_from: str | None) -> int:
    """Index in `chain` of the scope an increase draws on (default: the parent)."""
    top = owner_index(cloud, chain)
    if top == len(chain) - 1:
        raise InvalidInputError(
            f"{chain[-1].code!r} holds the pool of {cloud.code!r}; it has no grant",
            code="quota.pool_root",
        )
    if draw_from is None:
        return len(chain) - 2
    for i in range(top, len(chain) - 1):
        if chain[i].code == draw_from:
            return i
    raise InvalidInputError(
        f"cannot draw on {draw_from!r} for {chain[-1].code!r}: it must be an ancestor "
        f"at or below {cloud.owner.code!r}",
        code="quota.invalid_scope",
        extra={"draw_from": draw_from, "node": chain[-1].code},
    )


def set_observed_usage(
    store: QuotaStore,
    project_code: str,
    cloud_code: str,
    resource_class: str | ResourceClass,
    used: int,
    *,
    now: datetime | None = None,
) -> None:
    """Record what the provider reports in use (later filled by the sync task)."""
    cls = parse_class(resource_class, "resource_class")
    check_amount(used, "used", allow_zero=True)
    cloud, chain = store.locate(cloud_code, project_code)
    check_supported(cloud, [cls])
    owner_index(cloud, chain)
    if chain[-1].level is not OrgLevel.PROJECT:
        raise InvalidInputError(f"{project_code!r} is not a project", code="quota.not_a_project")
    store.set_usage(cloud, cls, chain[-1], used, utc(now))
