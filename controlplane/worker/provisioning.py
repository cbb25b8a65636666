"""The provisioning task body: make one tenant on one cloud what the ledger says.

    run_operation(ctx, op_id)

1. claim the operation (a short transaction; a lease, so a worker killed
   mid-call loses it and a redelivered message can take over);
2. re-read desired state — the grants as they are *now*, not as the event
   said — and call the adapter with no transaction open;
3. record the outcome, or schedule a retry by error class.

Duplicates and reordering converge: every run applies the current state, and
the adapter verbs are idempotent.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.tables import Cloud
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import CloudTenant, Operation
from controlplane.worker import operations as ops
from controlplane.worker.context import WorkerContext, queue_for
from controlplane.worker.desired import Target, desired_limits, load_target
from controlplane.worker.operations import OpKind, OpStatus
from controlplane.worker.requests_outcome import settle_requests
from controlplane.worker.retry import decide
from providers.base import CloudProvider, ProviderError, ScopedQuotaProvider, TenantRef

log = logging.getLogger("yunguan.worker")

TASK_RUN_OPERATION = "yunguan.run_operation"
_ME = f"{socket.gethostname()}:{os.getpid()}"


class _Disabled(ProviderError):
    """A disabled cloud gets no changes; permanent until an admin enables it."""

    code = "cloud.disabled"


@dataclass(frozen=True)
class RunResult:
    status: str
    retry_in: float | None = None


def _claim(ctx: WorkerContext, session: Session, op_id: int) -> bool:
    now = utcnow()
    claimed = session.execute(
        update(Operation)
        .where(
            Operation.id == op_id,
            or_(
                Operation.status == OpStatus.PENDING.value,
                (Operation.status == OpStatus.RUNNING.value) & (Operation.lease_expires_at < now),
            ),
        )
        .values(
            status=OpStatus.RUNNING.value,
            attempts=Operation.attempts + 1,
            started_at=now,
            lease_expires_at=now + ctx.lease,
            claimed_by=_ME,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _binding(session: Session, cloud_id: int, node_id: int) -> CloudTenant | None:
    return session.scalar(
        select(CloudTenant).where(CloudTenant.cloud_id == cloud_id, CloudTenant.node_id == node_id)
    )


def _apply(provider: CloudProvider, kind: OpKind, target: Target, bound: str | None) -> TenantRef:
    """The adapter calls: no transaction is open here."""
    if kind is OpKind.RETIRE:
        ref = TenantRef(key=target.node_code, provider_id=bound or "")
        if bound:
            provider.retire_tenant(ref)
        return ref
    if kind is OpKind.APPLY_SCOPE:
        # Upper levels carry only what is granted there; the pool's owner none.
        if not isinstance(provider, ScopedQuotaProvider) or not target.granted:
            return TenantRef(key=target.node_code, provider_id=bound or "")
        return provider.set_scope_quota(target.spec.path, dict(target.granted))
    ref = provider.ensure_tenant(target.spec)
    provider.set_quota(ref, desired_limits(target, provider.supported_classes()))
    return ref


def run_operation(ctx: WorkerContext, op_id: int) -> RunResult:
    with UnitOfWork(ctx.session_factory) as uow:
        if not _claim(ctx, uow.session, op_id):
            op = ops.get(uow.session, op_id)
            if op.status in {s.value for s in ops.FINAL}:
                return RunResult(op.status)
            # Another worker holds the lease (or a duplicate message raced this
            # one): look again when the lease ends, in case that worker died.
            remaining = (op.lease_expires_at or utcnow()) - utcnow()
            retry_in = max(1.0, remaining.total_seconds() + 1)
            kind = uow.session.scalar(select(Cloud.kind).where(Cloud.id == op.cloud_id))
            ctx.dispatcher.dispatch(
                TASK_RUN_OPERATION,
                (op_id,),
                queue=queue_for(kind or "openstack"),
                countdown=retry_in,
            )
            return RunResult("busy", retry_in=retry_in)
        op = ops.get(uow.session, op_id)
        kind, attempt = OpKind(op.kind), op.attempts
        target = load_target(uow.session, op.cloud_id, op.node_id)
        bound = _binding(uow.session, op.cloud_id, op.node_id)
        bound_id = bound.provider_id if bound else None
        uow.commit()

    try:
        if not target.enabled:
            raise _Disabled(f"cloud {target.cloud_code} is disabled")
        provider = ctx.providers.get(target.cloud_code, target.kind, target.connection)
        ref = _apply(provider, kind, target, bound_id)
    except Exception as exc:  # every failure is recorded; the class decides the retry
        return _failed(ctx, op_id, attempt, exc, target)
    return _succeeded(ctx, op_id, kind, target, ref)


def _succeeded(
    ctx: WorkerContext, op_id: int, kind: OpKind, target: Target, ref: TenantRef
) -> RunResult:
    with UnitOfWork(ctx.session_factory) as uow:
        s = uow.session
        op = ops.get(s, op_id, lock=True)
        bound = _binding(s, target.cloud_id, target.node_id)
        if kind is OpKind.RETIRE:
            if bound is not None:
                bound.retired = True
        elif bound is None:
            s.add(
                CloudTenant(
                    cloud_id=target.cloud_id,
                    node_id=target.node_id,
                    provider_id=ref.provider_id,
                    retired=False,
                    applied_generation=target.generation,
                    ensured_at=utcnow(),
                )
            )
        else:
            bound.provider_id = ref.provider_id
            bound.retired = False
            bound.applied_generation = target.generation
            bound.ensured_at = utcnow()
        op.status = OpStatus.SUCCEEDED.value
        op.finished_at = utcnow()
        op.lease_expires_at = None
        op.last_error_code = None
        op.last_error_message = None
        if kind is OpKind.PROVISION and op.started_at is not None:
            settle_requests(s, target.cloud_code, target.node_code, op.started_at, None)
        uow.commit()
    log.info(
        "operation %s (%s %s on %s) succeeded",
        op_id,
        kind.value,
        target.node_code,
        target.cloud_code,
    )
    return RunResult(OpStatus.SUCCEEDED.value)


def _failed(
    ctx: WorkerContext, op_id: int, attempt: int, exc: BaseException, target: Target
) -> RunResult:
    decision = decide(exc, attempt, ctx.retry)
    with UnitOfWork(ctx.session_factory) as uow:
        op = ops.get(uow.session, op_id, lock=True)
        op.last_error_code = decision.code
        op.last_error_message = decision.message
        op.lease_expires_at = None
        if decision.retry:
            op.status = OpStatus.PENDING.value
            op.dispatched_at = utcnow()
        else:
            op.status = OpStatus.FAILED.value
            op.finished_at = utcnow()
            if op.kind == OpKind.PROVISION.value and op.started_at is not None:
                settle_requests(
                    uow.session,
                    target.cloud_code,
                    target.node_code,
                    op.started_at,
                    f"{decision.code}: {decision.message}",
                )
        uow.commit()
    log.warning(
        "operation %s on %s attempt %s failed (%s): %s%s",
        op_id,
        target.cloud_code,
        attempt,
        decision.code,
        decision.message,
        f"; retry in {decision.countdown:.1f}s" if decision.retry else "; giving up",
    )
    if decision.retry:
        ctx.dispatcher.dispatch(
            TASK_RUN_OPERATION,
            (op_id,),
            queue=queue_for(target.kind),
            countdown=decision.countdown,
        )
        return RunResult(OpStatus.PENDING.value, retry_in=decision.countdown)
    return RunResult(OpStatus.FAILED.value)
