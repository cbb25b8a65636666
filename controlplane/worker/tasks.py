"""The task table: names → bodies, shared by Celery and the in-process pool.

Names are explicit and stable (messages in flight outlive deployments). Every
body takes ids or codes only and re-reads what it needs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from controlplane.db.base import utcnow
from controlplane.db.tables import Cloud
from controlplane.db.uow import UnitOfWork
from controlplane.observability.process import observe_task
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.worker.context import CONTROL_QUEUE, WorkerContext, queue_for
from controlplane.worker.provisioning import TASK_RUN_OPERATION, RunResult, run_operation
from controlplane.worker.relay import TASK_RELAY, relay_outbox, sweep
from controlplane.worker.sync import TASK_SYNC_CLOUD, sync_cloud
from quotas.reservations import expire_reservations

log = logging.getLogger("yunguan.worker")

TASK_SCHEDULE_SYNCS = "yunguan.schedule_syncs"
TASK_EXPIRE_RESERVATIONS = "yunguan.expire_reservations"


def relay_and_sweep(ctx: WorkerContext) -> int:
    moved = relay_outbox(ctx)
    sweep(ctx)
    return moved


def schedule_syncs(ctx: WorkerContext) -> int:
    """Fans one sync per enabled cloud out to that cloud's provider queue."""
    with UnitOfWork(ctx.session_factory) as uow:
        clouds = uow.session.execute(
            select(Cloud.code, Cloud.kind).where(Cloud.enabled.is_(True)).order_by(Cloud.code)
        ).all()
    for code, kind in clouds:
        ctx.dispatcher.dispatch(TASK_SYNC_CLOUD, (code,), queue=queue_for(kind))
    return len(clouds)


def expire(ctx: WorkerContext) -> int:
    with UnitOfWork(ctx.session_factory) as uow:
        n = expire_reservations(SqlQuotaStore(uow.session), utcnow())
        uow.commit()
    return n


def _run_operation(ctx: WorkerContext, op_id: int) -> RunResult:
    return run_operation(ctx, op_id)


def _observed(name: str, body: Callable[..., Any]) -> Callable[..., Any]:
    """Counts and times every run (yunguan_worker_tasks_total, …_duration_seconds),
    under Celery and in the in-process pool alike."""

    @functools.wraps(body)
    def run(ctx: WorkerContext, *args: Any) -> Any:
        with observe_task(name):
            return body(ctx, *args)

    return run


_BODIES: dict[str, Callable[..., Any]] = {
    TASK_RUN_OPERATION: _run_operation,
    TASK_RELAY: relay_and_sweep,
    TASK_SYNC_CLOUD: sync_cloud,
    TASK_SCHEDULE_SYNCS: schedule_syncs,
    TASK_EXPIRE_RESERVATIONS: expire,
}
TASKS: dict[str, Callable[..., Any]] = {name: _observed(name, b) for name, b in _BODIES.items()}

# name -> (queue, period in seconds): the beat schedule, also used in-process.
PERIODIC: dict[str, tuple[str, float]] = {
    TASK_RELAY: (CONTROL_QUEUE, 2.0),
    TASK_SCHEDULE_SYNCS: (CONTROL_QUEUE, 60.0),
    TASK_EXPIRE_RESERVATIONS: (CONTROL_QUEUE, 30.0),
}
