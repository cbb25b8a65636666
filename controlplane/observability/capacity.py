"""Capacity and quota series from the grant ledger and the latest observations.

Per cloud × class: the pool row of the grant tree (total, reserved, allocatable
by `quotas.model.pool_limit`, granted = the pool's `allocated`, the Σ of its
top-level grants) and the tenants' observed usage. Per cloud × class ×
architecture: the provider's last capacity report. Per prefecture, department
and (optionally) project × cloud × class: granted, allocated and observed use.
Read-only: the ledger is the source, never a provider.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.db.quota_tables import QuotaGrant, QuotaUsage
from controlplane.db.worker_tables import CapacityObservation
from controlplane.observability import families as f
from controlplane.observability.places import Places
from controlplane.vocabulary import OrgLevel
from quotas.model import LEVEL_RANK, pool_limit

_PREFECTURE_RANK = LEVEL_RANK[OrgLevel.PREFECTURE]
_DEPARTMENT_RANK = LEVEL_RANK[OrgLevel.DEPARTMENT]
_PROJECT_RANK = LEVEL_RANK[OrgLevel.PROJECT]

Key = tuple[int, str, int]  # cloud id, resource class, node id


def capacity_metrics(session: Session, places: Places, *, projects: bool) -> Iterator[Metric]:
    G = QuotaGrant
    grant_query = select(
        G.cloud_id,
        G.resource_class,
        G.node_id,
        G.level_rank,
        G.is_pool,
        G.granted,
        G.allocated,
        G.total,
        G.capacity_reserved,
        G.oversubscription,
    ).order_by(G.cloud_id, G.resource_class, G.level_rank, G.node_id)
    if not projects:
        grant_query = grant_query.where(G.level_rank < _PROJECT_RANK)
    grants = list(session.execute(grant_query).all())
    U = QuotaUsage
    usage: dict[Key, int] = {
        (u.cloud_id, u.resource_class, u.node_id): int(u.used)
        for u in session.execute(select(U.cloud_id, U.resource_class, U.node_id, U.used))
    }
    used_by = _usage_sums(usage, places)
    yield from _pools(grants, used_by, places)
    yield from _observed(session, grants, places)
    yield from _scopes(grants, used_by, places)
    if projects:
        yield from _projects(grants, usage, places)


def _usage_sums(usage: dict[Key, int], places: Places) -> dict[Key, int]:
    """Observed usage summed per cloud × class at every ancestor of each project
    (node id 0 stands for the whole cloud)."""
    sums: dict[Key, int] = defaultdict(int)
    for (cloud_id, cls, node_id), used in usage.items():
        sums[(cloud_id, cls, 0)] += used
        place = places.nodes.get(node_id)
        if place is None:
            continue
        for code in {place.department, place.prefecture} - {"", places.province}:
            sums[(cloud_id, cls, places.ids[code])] += used
    return sums


def _pools(grants: list[Any], used_by: dict[Key, int], places: Places) -> Iterator[Metric]:
    total, reserved, allocatable, granted, used = (
        f.CAPACITY_TOTAL.new(),
        f.CAPACITY_RESERVED.new(),
        f.CAPACITY_ALLOCATABLE.new(),
        f.CAPACITY_GRANTED.new(),
        f.CAPACITY_USED.new(),
    )
    for g in grants:
        cloud = places.clouds.get(g.cloud_id)
        if not g.is_pool or cloud is None:
            continue
        labels = (cloud.code, cloud.prefecture, g.resource_class)
        limit = pool_limit(
            g.total, cloud.ratio(g.resource_class), g.capacity_reserved, g.oversubscription
        )
        total.add(labels, g.total)
        reserved.add(labels, g.capacity_reserved)
        allocatable.add(labels, limit)
        granted.add(labels, g.allocated)
        used.add(labels, used_by.get((g.cloud_id, g.resource_class, 0), 0))
    for b in (total, reserved, allocatable, granted, used):
        yield b.metric


def _observed(session: Session, grants: list[Any], places: Places) -> Iterator[Metric]:
    oversub = {(g.cloud_id, g.resource_class): g.oversubscription for g in grants if g.is_pool}
    total, reserved, allocatable, used = (
        f.OBSERVED_TOTAL.new(),
        f.OBSERVED_RESERVED.new(),
        f.OBSERVED_ALLOCATABLE.new(),
        f.OBSERVED_USED.new(),
    )
    C = CapacityObservation
    rows = session.execute(
        select(C.cloud_id, C.resource_class, C.architecture, C.total, C.reserved, C.used).order_by(
            C.cloud_id, C.resource_class, C.architecture
        )
    )
    for r in rows:
        cloud = places.clouds.get(r.cloud_id)
        if cloud is None:
            continue
        labels = (cloud.code, cloud.prefecture, r.resource_class, r.architecture or "none")
        limit = pool_limit(
            r.total,
            cloud.ratio(r.resource_class),
            r.reserved,
            oversub.get((r.cloud_id, r.resource_class), 1.0),
        )
        total.add(labels, r.total)
        reserved.add(labels, r.reserved)
        allocatable.add(labels, limit)
        used.add(labels, r.used)
    for b in (total, reserved, allocatable, used):
        yield b.metric


def _scopes(grants: list[Any], used_by: dict[Key, int], places: Places) -> Iterator[Metric]:
    p_granted, p_allocated, p_used = (
        f.PREFECTURE_GRANTED.new(),
        f.PREFECTURE_ALLOCATED.new(),
        f.PREFECTURE_USED.new(),
    )
    d_granted, d_allocated, d_used = (
        f.DEPARTMENT_GRANTED.new(),
        f.DEPARTMENT_ALLOCATED.new(),
        f.DEPARTMENT_USED.new(),
    )
    for g in grants:
        cloud, place = places.clouds.get(g.cloud_id), places.nodes.get(g.node_id)
        if g.is_pool or cloud is None or place is None:
            continue
        used = used_by.get((g.cloud_id, g.resource_class, g.node_id), 0)
        if g.level_rank == _PREFECTURE_RANK:
            labels: tuple[str, ...] = (place.prefecture, cloud.code, g.resource_class)
            p_granted.add(labels, g.granted)
            p_allocated.add(labels, g.allocated)
            p_used.add(labels, used)
        elif g.level_rank == _DEPARTMENT_RANK:
            labels = (place.prefecture, place.code, cloud.code, g.resource_class)
            d_granted.add(labels, g.granted)
            d_allocated.add(labels, g.allocated)
            d_used.add(labels, used)
    for b in (p_granted, p_allocated, p_used, d_granted, d_allocated, d_used):
        yield b.metric


def _projects(grants: list[Any], usage: dict[Key, int], places: Places) -> Iterator[Metric]:
    granted, used = f.PROJECT_GRANTED.new(), f.PROJECT_USED.new()

    def labels(cloud_id: int, cls: str, node_id: int) -> tuple[str, ...] | None:
        cloud, place = places.clouds.get(cloud_id), places.nodes.get(node_id)
        if cloud is None or place is None or place.level is not OrgLevel.PROJECT:
            return None
        return (place.prefecture, place.department, place.code, cloud.code, cls)

    for g in grants:
        if g.level_rank == _PROJECT_RANK and not g.is_pool:
            key = labels(g.cloud_id, g.resource_class, g.node_id)
            if key is not None:
                granted.add(key, g.granted)
    for (cloud_id, cls, node_id), value in sorted(usage.items()):
        key = labels(cloud_id, cls, node_id)
        if key is not None:
            used.add(key, value)
    yield granted.metric
    yield used.metric
