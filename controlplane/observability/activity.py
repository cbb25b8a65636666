"""Series about what the control plane does: clouds, syncs, operations, requests, drift.

Everything comes from rows the workers and the API already write
(`sync_status`, `operations`, `quota_requests`, `quota_observations`); times
are exported as Unix timestamps so that ages are computed in PromQL
(`time() - …`) and the exposition does not change while nothing happens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import Metric
from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from controlplane.db.quota_tables import QuotaRequestRow
from controlplane.db.worker_tables import Operation, QuotaObservation, SyncStatus
from controlplane.observability import families as f
from controlplane.observability.places import Places
from controlplane.vocabulary import OrgLevel
from controlplane.worker.operations import OpKind, OpStatus
from quotas.model import RequestState

SYNC_KINDS = ("health", "capacity", "quotas", "inventory")


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def activity_metrics(session: Session, places: Places) -> Iterator[Metric]:
    yield _cloud_info(places)
    yield from _syncs(session, places)
    yield _operations(session, places)
    yield from _requests(session, places)
    yield _drift(session, places)


def _cloud_info(places: Places) -> Metric:
    info = f.CLOUD_INFO.new()
    for c in places.clouds.values():
        info.add((c.code, c.prefecture, c.name, c.kind, c.role, str(c.enabled).lower()), 1)
    return info.metric


def _syncs(session: Session, places: Places) -> Iterator[Metric]:
    """Every enabled cloud gets every sync kind, so a cloud that never synced
    shows a last success of 0 (and alerts as stale) instead of no series."""
    rows = {(r.cloud_id, r.kind): r for r in session.scalars(select(SyncStatus))}
    up, success, attempt, duration, calls, errors, last_error = (
        f.PROVIDER_UP.new(),
        f.SYNC_LAST_SUCCESS.new(),
        f.SYNC_LAST_ATTEMPT.new(),
        f.SYNC_DURATION.new(),
        f.SYNC_CALLS.new(),
        f.SYNC_ERRORS.new(),
        f.SYNC_LAST_ERROR.new(),
    )
    for cloud in places.enabled_clouds():
        health = rows.get((cloud.id, "health"))
        if health is not None and health.last_attempt_at is not None:
            up.add((cloud.code, cloud.prefecture), 1 if health.provider_up else 0)
        for kind in SYNC_KINDS:
            labels = (cloud.code, cloud.prefecture, kind)
            row = rows.get((cloud.id, kind))
            success.add(labels, _ts(row.last_success_at if row else None))
            if row is None:
                continue
            attempt.add(labels, _ts(row.last_attempt_at))
            if row.last_duration_s is not None:
                duration.add(labels, row.last_duration_s)
            calls.add(labels, row.calls_total)
            errors.add(labels, row.errors_total)
            if row.last_error_code:
                last_error.add((*labels, row.last_error_code), 1)
    for b in (up, success, attempt, duration, calls, errors, last_error):
        yield b.metric


def _operations(session: Session, places: Places) -> Metric:
    """Zero-filled per enabled cloud × kind × status: a first failure must show
    as a change of an existing series (the alert compares over a window)."""
    counts: dict[tuple[int, str, str], int] = {
        (cloud_id, kind, status): n
        for cloud_id, kind, status, n in session.execute(
            select(Operation.cloud_id, Operation.kind, Operation.status, func.count()).group_by(
                Operation.cloud_id, Operation.kind, Operation.status
            )
        )
    }
    ops = f.OPERATIONS.new()
    kinds = sorted({k.value for k in OpKind} | {k for _c, k, _s in counts})
    for cloud in places.clouds.values():
        for kind in kinds:
            for status in OpStatus:
                n = counts.get((cloud.id, kind, status.value), 0)
                if n or cloud.enabled:
                    ops.add((cloud.code, cloud.prefecture, kind, status.value), n)
    return ops.metric


def _approving_scope(places: Places, project_id: int) -> str:
    """A request is approved by its department's parent: the prefecture, or the province."""
    place = places.nodes.get(project_id)
    if place is None:
        return places.province
    return place.prefecture


def _requests(session: Session, places: Places) -> Iterator[Metric]:
    R = QuotaRequestRow
    by_state: dict[tuple[str, str], int] = defaultdict(int)
    oldest: dict[str, datetime] = {}
    rows = session.execute(
        select(R.project_id, R.state, func.count(), func.min(R.created_at)).group_by(
            R.project_id, R.state
        )
    )
    for project_id, state, n, first in rows:
        scope = _approving_scope(places, project_id)
        by_state[(scope, state)] += n
        if state == RequestState.PENDING.value and (scope not in oldest or first < oldest[scope]):
            oldest[scope] = first
    requests, pending = f.REQUESTS.new(), f.OLDEST_PENDING.new()
    # Every approving scope shows its pending count, zero included.
    scopes = {places.province} | {
        p.code for p in places.nodes.values() if p.level is OrgLevel.PREFECTURE
    }
    for scope in sorted(scopes):
        by_state.setdefault((scope, RequestState.PENDING.value), 0)
    for (scope, state), n in sorted(by_state.items()):
        requests.add((scope, state), n)
    for scope, first in sorted(oldest.items()):
        pending.add((scope,), _ts(first))
    yield requests.metric
    yield pending.metric


def _drift(session: Session, places: Places) -> Metric:
    Q = QuotaObservation
    drift = f.DRIFT.new()
    rows = session.execute(
        select(Q.cloud_id, Q.resource_class, func.sum(case((Q.drift, 1), else_=0), type_=Integer))
        .group_by(Q.cloud_id, Q.resource_class)
        .order_by(Q.cloud_id, Q.resource_class)
    )
    for cloud_id, cls, n in rows:
        cloud = places.clouds.get(cloud_id)
        if cloud is not None:
            drift.add((cloud.code, cloud.prefecture, cls), int(n or 0))
    return drift.metric
