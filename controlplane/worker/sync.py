"""Periodic reconciliation of one cloud: capacity, quotas and usage (with drift
correction), inventory, health.

Each function calls the adapter with no transaction open, then records what
it saw in one short transaction, and always updates `sync_status` (success or
the error code), so ops see a stale or failing sync in the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.quota_tables import QuotaGrant
from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import (
    CapacityObservation,
    CloudTenant,
    Operation,
    SyncStatus,
)
from controlplane.ledgerstore.inventory import ObservedItem, replace_cloud_inventory
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.vocabulary import CloudKind, OrgLevel, ResourceClass
from controlplane.worker import operations as ops
from controlplane.worker.context import WorkerContext, queue_for
from controlplane.worker.operations import OpKind, OpStatus
from controlplane.worker.provisioning import TASK_RUN_OPERATION
from controlplane.worker.quota_records import record_quotas
from providers.base import (
    CloudProvider,
    HealthReport,
    ProviderError,
    QuotaReading,
    TenantRef,
    read_quotas,
)
from quotas.grants import set_capacity
from quotas.model import SYSTEM, NodeRef

log = logging.getLogger("yunguan.sync")

TASK_SYNC_CLOUD = "yunguan.sync_cloud"
SYNC_KINDS = ("health", "capacity", "quotas", "inventory")
# Requests in flight per cloud during a quota sync. The reads are independent
# round trips, so this is bounded by what the cloud's API workers serve at once
# (the OpenStack testbed runs 2 processes x 4 threads per API), not by us.
PARALLEL_READS = 16


@dataclass(frozen=True)
class CloudInfo:
    id: int
    code: str
    kind: CloudKind
    connection: dict[str, object]


def _cloud(session: Session, code: str) -> CloudInfo:
    c = session.scalar(select(Cloud).where(Cloud.code == code))
    if c is None:
        raise LookupError(f"no cloud {code!r}")
    return CloudInfo(c.id, c.code, CloudKind(c.kind), dict(c.connection))


def _status(session: Session, cloud_id: int, kind: str) -> SyncStatus:
    row = session.scalar(
        select(SyncStatus).where(SyncStatus.cloud_id == cloud_id, SyncStatus.kind == kind)
    )
    if row is None:
        row = SyncStatus(
            cloud_id=cloud_id, kind=kind, provider_up=False, errors_total=0, calls_total=0
        )
        session.add(row)
        session.flush()
    return row


@contextmanager
def _recorded(ctx: WorkerContext, cloud: CloudInfo, kind: str) -> Iterator[None]:
    """Times a sync and records success or the error class in sync_status."""
    started, at = time.monotonic(), utcnow()
    error: str | None = None
    up = True
    try:
        yield
    except ProviderError as exc:
        # Recorded, not raised: a periodic sync of a broken cloud must not crash
        # the beat; the stale timestamp and the error code alert ops instead.
        error, up = exc.code, not exc.retryable
        log.warning("sync %s of %s failed (%s): %s", kind, cloud.code, exc.code, exc.message)
    except BaseException:
        error, up = "internal", True
        raise
    finally:
        with UnitOfWork(ctx.session_factory) as uow:
            row = _status(uow.session, cloud.id, kind)
            row.last_attempt_at = at
            row.calls_total += 1
            row.last_duration_s = time.monotonic() - started
            row.provider_up = up
            if error is None:
                row.last_success_at = at
                row.last_error_code = None
            else:
                row.errors_total += 1
                row.last_error_code = error
            uow.commit()


def _provider(ctx: WorkerContext, cloud: CloudInfo) -> CloudProvider:
    return ctx.providers.get(cloud.code, cloud.kind, cloud.connection)


# -- capacity ---------------------------------------------------------------


def sync_capacity(ctx: WorkerContext, cloud_code: str) -> None:
    with UnitOfWork(ctx.session_factory) as uow:
        cloud = _cloud(uow.session, cloud_code)
    with _recorded(ctx, cloud, "capacity"):
        report = _provider(ctx, cloud).read_capacity()
        with UnitOfWork(ctx.session_factory) as uow:
            s = uow.session
            s.execute(delete(CapacityObservation).where(CapacityObservation.cloud_id == cloud.id))
            totals: dict[ResourceClass, tuple[int, int]] = {}
            for e in report.entries:
                s.add(
                    CapacityObservation(
                        cloud_id=cloud.id,
                        resource_class=e.resource_class.value,
                        architecture=e.architecture.value if e.architecture else "",
                        total=e.total,
                        reserved=e.reserved,
                        allocation_ratio=e.allocation_ratio,
                        used=e.used,
                        observed_at=report.observed_at,
                    )
                )
                t, r = totals.get(e.resource_class, (0, 0))
                totals[e.resource_class] = (t + e.total, r + e.reserved)
            _update_pools(s, cloud, totals)
            uow.commit()


def _update_pools(
    s: Session, cloud: CloudInfo, totals: dict[ResourceClass, tuple[int, int]]
) -> None:
    """Observed capacity replaces declared capacity, but only when it changed:
    a pool's generation (its ETag) must not churn every sync."""
    store = SqlQuotaStore(s)
    ref = store.cloud(cloud.code)
    current = {  # the pool rows only, not the whole tree
        (ResourceClass(r.resource_class), r.total, r.capacity_reserved)
        for r in s.execute(
            select(QuotaGrant.resource_class, QuotaGrant.total, QuotaGrant.capacity_reserved).where(
                QuotaGrant.cloud_id == cloud.id, QuotaGrant.is_pool.is_(True)
            )
        ).all()
    }
    for rc, (total, reserved) in totals.items():
        if not ref.supports(rc) or (rc, total, reserved) in current:
            continue
        # force: reality wins; if capacity shrank below what is granted, the
        # metrics and alerts show it rather than the sync failing forever.
        set_capacity(
            store, SYSTEM, cloud.code, rc, total, reserved=reserved, source="observed", force=True
        )


# -- quotas, usage and drift ------------------------------------------------


@dataclass(frozen=True)
class _Bound:
    node: NodeRef
    ref: TenantRef

    @property
    def node_id(self) -> int:
        return self.node.id

    @property
    def code(self) -> str:
        return self.node.code


def _bindings(s: Session, cloud_id: int) -> list[_Bound]:
    rows = s.execute(
        select(CloudTenant.node_id, CloudTenant.provider_id, OrgNode.code, OrgNode.path)
        .join(OrgNode, OrgNode.id == CloudTenant.node_id)
        .where(
            CloudTenant.cloud_id == cloud_id,
            CloudTenant.retired.is_(False),
            OrgNode.level == "project",
        )
        .order_by(CloudTenant.id)
    ).all()
    return [
        _Bound(
            NodeRef(r.node_id, r.code, OrgLevel.PROJECT, r.path), TenantRef(r.code, r.provider_id)
        )
        for r in rows
    ]


def sync_quotas(ctx: WorkerContext, cloud_code: str) -> list[int]:
    """Reads every tenant's quota and usage; returns the ids of drift-correcting
    operations it started (policy `correct`)."""
    with UnitOfWork(ctx.session_factory) as uow:
        cloud = _cloud(uow.session, cloud_code)
        bound = _bindings(uow.session, cloud.id)
    started: list[int] = []
    with _recorded(ctx, cloud, "quotas"):
        provider = _provider(ctx, cloud)
        t0 = time.monotonic()
        # The adapter's bulk read when it has one (OpenStack: ~2 calls per
        # tenant instead of 4), else read_quota per tenant. A retryable error
        # raises: the whole sync fails and says so.
        readings = read_quotas(provider, [b.ref for b in bound], parallel=PARALLEL_READS)
        read_s = time.monotonic() - t0
        read: list[tuple[_Bound, QuotaReading]] = []
        for b in bound:
            reading = readings[b.ref]
            if isinstance(reading, ProviderError):
                log.warning("reading %s failed (%s): %s", b.code, reading.code, reading.message)
            else:
                read.append((b, reading))
        enforced = provider.supported_classes()
        with UnitOfWork(ctx.session_factory) as uow:
            drifted = record_quotas(
                uow.session,
                cloud.code,
                [(b.node, reading) for b, reading in read],
                enforced,
                utcnow(),
            )
            for node in drifted:
                op = _correct(ctx, uow.session, cloud, node)
                if op is not None:
                    started.append(op)
            uow.commit()
        log.info(
            "quota sync of %s: %d of %d tenants read in %.1f s, recorded in %.1f s, %d drifted",
            cloud.code,
            len(read),
            len(bound),
            read_s,
            time.monotonic() - t0 - read_s,
            len(drifted),
        )
    for op_id in started:
        ctx.dispatcher.dispatch(TASK_RUN_OPERATION, (op_id,), queue=queue_for(cloud.kind))
    return started


def _correct(ctx: WorkerContext, s: Session, cloud: CloudInfo, node: NodeRef) -> int | None:
    if ctx.drift_policy != "correct":
        return None
    busy = s.scalar(
        select(Operation.id)
        .where(
            Operation.cloud_id == cloud.id,
            Operation.node_id == node.id,
            Operation.kind == OpKind.PROVISION.value,
            Operation.status.in_([OpStatus.PENDING.value, OpStatus.RUNNING.value]),
        )
        .limit(1)
    )
    if busy is not None:
        return None  # a provisioning run is already converging it
    op = ops.create(
        s,
        kind=OpKind.PROVISION,
        cloud_id=cloud.id,
        node_id=node.id,
        scope_path=node.path,
        generation=0,
        reason="drift",
    )
    log.warning("drift on %s/%s: correcting with operation %s", cloud.code, node.code, op.id)
    return op.id


# -- inventory and health ---------------------------------------------------


def sync_inventory(ctx: WorkerContext, cloud_code: str) -> None:
    with UnitOfWork(ctx.session_factory) as uow:
        cloud = _cloud(uow.session, cloud_code)
        owners = {b.ref.provider_id: b.code for b in _bindings(uow.session, cloud.id)}
    with _recorded(ctx, cloud, "inventory"):
        observed_at = utcnow()
        items = _provider(ctx, cloud).list_inventory()
        observed = [
            ObservedItem(
                kind=i.kind,
                external_id=i.id,
                name=i.name,
                project=owners.get(i.tenant or ""),
                status=i.status,
                running=i.running,
                architecture=i.architecture.value if i.architecture else None,
            )
            for i in items
        ]
        with UnitOfWork(ctx.session_factory) as uow:
            replace_cloud_inventory(uow.session, cloud.code, observed, observed_at)
            uow.commit()


def check_health(ctx: WorkerContext, cloud_code: str) -> bool:
    with UnitOfWork(ctx.session_factory) as uow:
        cloud = _cloud(uow.session, cloud_code)
    try:
        report = _provider(ctx, cloud).check_health()
    except ProviderError as exc:  # e.g. a clouds.yaml entry or kubeconfig that is missing
        log.warning("cloud %s cannot be reached (%s): %s", cloud.code, exc.code, exc.message)
        report = HealthReport(up=False, latency_ms=0.0, detail=exc.message)
    with UnitOfWork(ctx.session_factory) as uow:
        row = _status(uow.session, cloud.id, "health")
        row.last_attempt_at = utcnow()
        row.calls_total += 1
        row.provider_up = report.up
        row.last_duration_s = report.latency_ms / 1000
        if report.up:
            row.last_success_at = row.last_attempt_at
            row.last_error_code = None
        else:
            row.errors_total += 1
            row.last_error_code = "provider.unavailable"
        uow.commit()
    return report.up


def sync_cloud(ctx: WorkerContext, cloud_code: str) -> None:
    """One full cycle for one cloud; a down cloud stops after the health check."""
    if not check_health(ctx, cloud_code):
        return
    sync_capacity(ctx, cloud_code)
    sync_quotas(ctx, cloud_code)
    sync_inventory(ctx, cloud_code)
