"""Operation records: each provisioning step as users see it.

`pending → running → succeeded | failed`, or `superseded` when a newer
operation for the same target was created before this one ran. Every function
works inside the caller's unit of work (never commits).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.worker_tables import Operation
from controlplane.vocabulary import ConflictError, NotFoundError


class OpKind(StrEnum):
    PROVISION = "provision"  # ensure the tenant, push its quota
    APPLY_SCOPE = "apply_scope"  # a parent account's limits (Slurm)
    RETIRE = "retire"


class OpStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"


FINAL = frozenset({OpStatus.SUCCEEDED, OpStatus.FAILED, OpStatus.SUPERSEDED})


def create(
    session: Session,
    *,
    kind: OpKind,
    cloud_id: int,
    node_id: int,
    scope_path: str,
    generation: int,
    reason: str,
    source_event_id: int | None = None,
) -> Operation:
    """A new pending operation; older pending ones for the same target are superseded
    (the new one applies the then-current desired state, which covers theirs)."""
    session.execute(
        update(Operation)
        .where(
            Operation.cloud_id == cloud_id,
            Operation.node_id == node_id,
            Operation.kind == kind.value,
            Operation.status == OpStatus.PENDING.value,
        )
        .values(status=OpStatus.SUPERSEDED.value, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    op = Operation(
        kind=kind.value,
        cloud_id=cloud_id,
        node_id=node_id,
        scope_path=scope_path,
        target_generation=generation,
        status=OpStatus.PENDING.value,
        attempts=0,
        reason=reason,
        source_event_id=source_event_id,
    )
    session.add(op)
    session.flush()
    return op


def get(session: Session, op_id: int, *, lock: bool = False) -> Operation:
    query = select(Operation).where(Operation.id == op_id)
    if lock:
        query = query.with_for_update()
    op = session.scalar(query)
    if op is None:
        raise NotFoundError(f"no operation {op_id}", code="operation.not_found")
    return op


def undispatched(session: Session, older_than: timedelta, limit: int) -> Sequence[Operation]:
    """Pending operations whose trigger was never sent (or sent long ago and lost,
    e.g. with a broker restart): the sweep sends them again."""
    cutoff = utcnow() - older_than
    return session.scalars(
        select(Operation)
        .where(
            Operation.status == OpStatus.PENDING.value,
            (Operation.dispatched_at.is_(None)) | (Operation.dispatched_at < cutoff),
        )
        .order_by(Operation.id)
        .limit(limit)
    ).all()


def retry(session: Session, op_id: int) -> Operation:
    """`yunguan ops retry`: a failed operation becomes pending again."""
    op = get(session, op_id, lock=True)
    if op.status != OpStatus.FAILED.value:
        raise ConflictError(
            f"operation {op_id} is {op.status}; only failed operations are retried",
            code="operation.not_failed",
        )
    op.status = OpStatus.PENDING.value
    op.attempts = 0
    op.dispatched_at = None
    op.finished_at = None
    op.reason = "retry"
    session.flush()
    return op


def mark_dispatched(session: Session, op_ids: Sequence[int], now: datetime) -> None:
    if op_ids:
        session.execute(
            update(Operation)
            .where(Operation.id.in_(op_ids))
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
