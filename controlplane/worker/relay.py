"""The outbox relay: turns committed events into operations and sends their triggers.

One transaction claims a batch of unpublished outbox rows (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, so several relays never take the same row; SQLite
serialises writers anyway), creates the operations they imply and marks the
rows published. Only after that commit are the task messages sent: a message
is a trigger, the operation row is the durable record. If sending fails (the
broker is down) or a message is lost (a broker restart), the operation stays
pending with no recent `dispatched_at`, and `sweep()` sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.outbox import OutboxEvent
from controlplane.db.quota_tables import QuotaGrant, QuotaRequestRow
from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import Operation
from controlplane.vocabulary import CloudKind
from controlplane.worker import operations as ops
from controlplane.worker.context import WorkerContext, queue_for
from controlplane.worker.operations import OpKind, OpStatus
from controlplane.worker.provisioning import TASK_RUN_OPERATION

log = logging.getLogger("yunguan.relay")

TASK_RELAY = "yunguan.relay_outbox"
REDISPATCH_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Trigger:
    op_id: int
    queue: str


def _claim_batch(session: Session, limit: int) -> Sequence[OutboxEvent]:
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).all()


def _target_of(session: Session, event: OutboxEvent) -> tuple[OpKind, Cloud, OrgNode] | None:
    """The operation an event implies, if any (requests and reservations imply none:
    their effect arrives as a grant change)."""
    payload = event.payload
    if event.topic == "quota.request.changed":
        return _approved_request(session, event)
    if event.topic == "quota.grant.changed":
        kind = OpKind.PROVISION if payload.get("level") == "project" else OpKind.APPLY_SCOPE
    elif event.topic == "tenant.retire":
        kind = OpKind.RETIRE
    else:
        return None
    cloud = session.scalar(select(Cloud).where(Cloud.code == payload.get("cloud")))
    node = session.scalar(select(OrgNode).where(OrgNode.code == payload.get("node")))
    if cloud is None or node is None:
        log.warning("outbox %s names an unknown cloud or node; skipped", event.id)
        return None
    if kind is OpKind.APPLY_SCOPE and cloud.kind != CloudKind.SLURM.value:
        return None  # only Slurm mirrors the tree's upper levels as parent accounts
    return kind, cloud, node


def _approved_request(session: Session, event: OutboxEvent) -> tuple[OpKind, Cloud, OrgNode] | None:
    """A request event matters once the request is approved: its project's quota on
    its cloud must be pushed. The row is re-read: the event may be stale."""
    req = session.get(QuotaRequestRow, event.payload.get("request"))
    if req is None or req.state != "approved" or req.cloud_id is None:
        return None
    cloud = session.get(Cloud, req.cloud_id)
    node = session.get(OrgNode, req.project_id)
    if cloud is None or node is None:
        return None
    return OpKind.PROVISION, cloud, node


def _scopes_of(session: Session, cloud: Cloud, project: OrgNode) -> Sequence[OrgNode]:
    """The project's ancestors below the cloud's owner that hold a grant there.

    An approval draws on the approving scope and lifts every grant between it
    and the project as needed (a department's, when the project outgrows it),
    with no grant event of their own. On Slurm those ancestors are parent
    accounts with limits of their own, so they are re-applied with the project."""
    if cloud.kind != CloudKind.SLURM.value:
        return ()
    codes = [c for c in project.path.split("/") if c][:-1]
    owner = session.get(OrgNode, cloud.owner_id)
    if owner is None or owner.code not in codes:
        return ()
    below = codes[codes.index(owner.code) + 1 :]
    granted = select(QuotaGrant.node_id).where(QuotaGrant.cloud_id == cloud.id)
    return session.scalars(
        select(OrgNode).where(OrgNode.code.in_(below), OrgNode.id.in_(granted))
    ).all()


def _operations_for(session: Session, events: Sequence[OutboxEvent]) -> list[Operation]:
    """One operation per target per batch: a grant change of four classes is four
    events, and one run applies them all (it re-reads the grants anyway)."""
    # target -> (event, cloud, node, whether the event names the target itself)
    latest: dict[tuple[OpKind, int, int], tuple[OutboxEvent, Cloud, OrgNode, bool]] = {}
    for event in events:
        found = _target_of(session, event)
        if found is not None:
            kind, cloud, node = found
            latest[(kind, cloud.id, node.id)] = (event, cloud, node, True)
            if event.topic == "quota.request.changed":
                for scope in _scopes_of(session, cloud, node):
                    key = (OpKind.APPLY_SCOPE, cloud.id, scope.id)
                    latest.setdefault(key, (event, cloud, scope, False))
    created = []
    for (kind, cloud_id, node_id), (event, _cloud, node, direct) in latest.items():
        generation = session.scalar(
            select(func.coalesce(func.max(QuotaGrant.generation), 0)).where(
                QuotaGrant.cloud_id == cloud_id, QuotaGrant.node_id == node_id
            )
        )
        created.append(
            ops.create(
                session,
                kind=kind,
                cloud_id=cloud_id,
                node_id=node_id,
                scope_path=node.path,
                generation=int(generation or 0),
                reason="event",
                # unique: an event is the source of the one operation it names
                source_event_id=event.id if direct else None,
            )
        )
    return created


def _kinds(session: Session, ops_: Sequence[Operation]) -> dict[int, str]:
    ids = {o.cloud_id for o in ops_}
    rows = session.execute(select(Cloud.id, Cloud.kind).where(Cloud.id.in_(ids))).all()
    return {r.id: r.kind for r in rows}


def _send(ctx: WorkerContext, triggers: Sequence[Trigger]) -> list[int]:
    sent = []
    for t in triggers:
        try:
            ctx.dispatcher.dispatch(TASK_RUN_OPERATION, (t.op_id,), queue=t.queue)
            sent.append(t.op_id)
        except Exception as exc:  # the broker may be down; sweep() resends
            log.warning("could not send operation %s: %s", t.op_id, exc.__class__.__name__)
            break
    return sent


def _record_sent(ctx: WorkerContext, op_ids: list[int]) -> None:
    if op_ids:
        with UnitOfWork(ctx.session_factory) as uow:
            ops.mark_dispatched(uow.session, op_ids, utcnow())
            uow.commit()


def relay_outbox(ctx: WorkerContext, batch: int = 200) -> int:
    """Relays one batch; returns how many events it consumed."""
    with UnitOfWork(ctx.session_factory) as uow:
        events = _claim_batch(uow.session, batch)
        created = _operations_for(uow.session, events)
        now = utcnow()
        for e in events:
            e.published_at = now
        kinds = _kinds(uow.session, created)
        triggers = [Trigger(op.id, queue_for(kinds[op.cloud_id])) for op in created]
        uow.commit()
    _record_sent(ctx, _send(ctx, triggers))
    return len(events)


def sweep(ctx: WorkerContext, batch: int = 200) -> int:
    """Resends triggers of pending operations never sent or sent long ago, and of
    running ones whose lease ran out (their worker died)."""
    now = utcnow()
    with UnitOfWork(ctx.session_factory) as uow:
        stale = list(ops.undispatched(uow.session, REDISPATCH_AFTER, batch))
        stale += uow.session.scalars(
            select(Operation)
            .where(Operation.status == OpStatus.RUNNING.value, Operation.lease_expires_at < now)
            .limit(batch)
        ).all()
        kinds = _kinds(uow.session, stale)
        triggers = [Trigger(op.id, queue_for(kinds[op.cloud_id])) for op in stale]
    _record_sent(ctx, _send(ctx, triggers))
    return len(triggers)
