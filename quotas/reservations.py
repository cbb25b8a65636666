"""Reservations: consumption held against a project's grant, with a TTL.

    held ──commit──▶ committed ──release──▶ released
      ├───release──▶ released
      └───(ttl)────▶ expired            (expire_reservations, a periodic job)

A provisioning flow reserves before it calls the provider, commits when the
resources exist and releases when they are gone (or when the call failed).
Held and committed reservations are the project's ledger: the project row's
`consumed` is their sum, kept under the same row lock as the grant, so
Σ live reservations ≤ the project's grant always holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from controlplane.vocabulary import ConflictError, InvalidInputError, OrgLevel, ResourceClass
from quotas.admission import Shortfall, bumped, exceeded_error
from quotas.grants import delta_items, owner_index, utc
from quotas.inputs import check_supported
from quotas.model import (
    SYSTEM,
    Actor,
    Change,
    CloudRef,
    GrantRow,
    NodeRef,
    Reservation,
    ReservationState,
)
from quotas.ports import QuotaStore

MAX_TTL = timedelta(days=7)


@dataclass(frozen=True)
class ReservationResult:
    reservation: Reservation
    grants: tuple[GrantRow, ...] = ()
    changes: tuple[Change, ...] = ()


def reserve(
    store: QuotaStore,
    actor: Actor,
    project_code: str,
    cloud_code: str,
    amounts: Mapping[str | ResourceClass, int],
    *,
    ttl: timedelta,
    now: datetime | None = None,
) -> ReservationResult:
    """Hold `amounts` of the project's grant until committed, released or expired."""
    now = utc(now)
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidInputError(
            f"ttl must be more than 0 s and at most {MAX_TTL}", code="reservation.invalid"
        )
    items = delta_items(amounts)
    cloud, chain = store.locate(cloud_code, project_code)
    check_supported(cloud, [i.resource_class for i in items])
    owner_index(cloud, chain)
    project = chain[-1]
    if project.level is not OrgLevel.PROJECT:
        raise InvalidInputError(f"{project_code!r} is not a project", code="quota.not_a_project")
    amounts_by_class = {i.resource_class: i.amount for i in items}
    res = store.add_reservation(project, cloud, amounts_by_class, now + ttl, actor.id, now)
    _emit(store, actor, res)  # before the lock, like every quota outbox row
    locked = store.lock_grants(cloud, [(i.resource_class, [project]) for i in items])
    shortfalls, new = [], []
    for item, (row,) in zip(items, locked, strict=True):
        if row.free < item.amount:
            shortfalls.append(
                Shortfall(
                    item.resource_class, item.amount, row.granted, max(0, row.free), project.code
                )
            )
        else:
            new.append(bumped(row, consumed=row.consumed + item.amount))
    if shortfalls:
        raise exceeded_error(cloud.code, project.code, shortfalls)
    saved = store.save_grants(new, now)
    change = Change(
        "quota.reservation.hold",
        "quota_reservation",
        str(res.id),
        project.path,
        None,
        res.as_dict(),
    )
    return ReservationResult(res, tuple(saved), (change,))


def _emit(store: QuotaStore, actor: Actor, res: Reservation) -> None:
    store.emit(
        "quota.reservation.changed",
        "quota_reservation",
        str(res.id),
        {
            "reservation": res.id,
            "project": res.project.code,
            "cloud": res.cloud.code,
            "by": actor.id,
        },
    )


def _state_conflict(res: Reservation, wanted: ReservationState) -> ConflictError:
    return ConflictError(
        f"reservation {res.id} is {res.state.value}; it cannot become {wanted.value}",
        code="reservation.state_conflict",
        extra={"id": res.id, "state": res.state.value, "wanted": wanted.value},
    )


def commit_reservation(
    store: QuotaStore, actor: Actor, reservation_id: int, *, now: datetime | None = None
) -> ReservationResult:
    """The reserved resources now exist: keep them counted, without a deadline."""
    now = utc(now)
    res = store.reservation(reservation_id, lock=True)
    if res.state is not ReservationState.HELD:
        raise _state_conflict(res, ReservationState.COMMITTED)
    if res.expires_at <= now:
        raise ConflictError(
            f"reservation {res.id} expired at {res.expires_at.isoformat()}",
            code="reservation.expired",
            extra={"id": res.id, "expires_at": res.expires_at.isoformat()},
        )
    store.set_reservation_state(res.id, ReservationState.COMMITTED, now)
    done = replace(res, state=ReservationState.COMMITTED)
    _emit(store, actor, res)
    change = Change(
        "quota.reservation.commit",
        "quota_reservation",
        str(res.id),
        res.project.path,
        res.as_dict(),
        done.as_dict(),
    )
    return ReservationResult(done, changes=(change,))


def _give_back(
    store: QuotaStore,
    cloud: CloudRef,
    held: Mapping[tuple[ResourceClass, NodeRef], int],
    now: datetime,
) -> list[GrantRow]:
    keys = sorted(held, key=lambda k: (k[1].id, k[0].value))
    locked = store.lock_grants(cloud, [(cls, [node]) for cls, node in keys])
    new = []
    for key, (row,) in zip(keys, locked, strict=True):
        if row.consumed < held[key]:
            raise RuntimeError(f"ledger of {row.node.code!r} is below a live reservation")
        new.append(bumped(row, consumed=row.consumed - held[key]))
    return store.save_grants(new, now)


def release_reservation(
    store: QuotaStore, actor: Actor, reservation_id: int, *, now: datetime | None = None
) -> ReservationResult:
    """Give a held or committed reservation back to the project's grant."""
    now = utc(now)
    res = store.reservation(reservation_id, lock=True)
    if res.state not in {ReservationState.HELD, ReservationState.COMMITTED}:
        raise _state_conflict(res, ReservationState.RELEASED)
    _emit(store, actor, res)
    rows = _give_back(
        store, res.cloud, {(cls, res.project): n for cls, n in res.amounts.items()}, now
    )
    store.set_reservation_state(res.id, ReservationState.RELEASED, now)
    done = replace(res, state=ReservationState.RELEASED)
    change = Change(
        "quota.reservation.release",
        "quota_reservation",
        str(res.id),
        res.project.path,
        res.as_dict(),
        done.as_dict(),
    )
    return ReservationResult(done, tuple(rows), (change,))


def expire_reservations(store: QuotaStore, now: datetime, *, limit: int = 500) -> int:
    """Release held reservations whose TTL has passed; returns how many.

    Run periodically (the beat schedule of a later issue). Concurrent sweeps
    skip each other's rows; clouds are visited in id order so the grant rows
    are still locked in the global order.
    """
    expired = store.lock_expired_reservations(now, limit)
    by_cloud: dict[int, list[Reservation]] = defaultdict(list)
    for res in expired:
        by_cloud[res.cloud.id].append(res)
    for res in expired:
        _emit(store, SYSTEM, res)
    for cloud_id in sorted(by_cloud):
        batch = by_cloud[cloud_id]
        held: dict[tuple[ResourceClass, NodeRef], int] = defaultdict(int)
        for res in batch:
            for cls, n in res.amounts.items():
                held[(cls, res.project)] += n
        _give_back(store, batch[0].cloud, held, now)
        for res in batch:
            store.set_reservation_state(res.id, ReservationState.EXPIRED, now)
    return len(expired)


def list_reservations(
    store: QuotaStore,
    *,
    project: str | None = None,
    state: ReservationState | None = None,
    within: tuple[str, ...] | None = None,
) -> list[Reservation]:
    return store.reservations(project=project, state=state, within=within)
