"""Provisioning operations as users see them, scoped like everything else."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import Access, require
from api.deps import UoW
from controlplane.db.scoping import within_clause
from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.worker_tables import Operation
from controlplane.identity import audit
from controlplane.identity.principal import within
from controlplane.identity.roles import Permission
from controlplane.vocabulary import NotFoundError
from controlplane.worker import operations as ops

router = APIRouter(prefix="/v1", tags=["operations"])

Reader = Annotated[Access, Depends(require(Permission.OPERATION_READ))]
Retrier = Annotated[Access, Depends(require(Permission.OPERATION_RETRY))]


class OperationOut(BaseModel):
    id: int
    kind: str
    cloud: str
    node: str
    target_generation: int
    status: str
    attempts: int
    reason: str
    last_error_code: str | None
    last_error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _out(op: Operation, cloud: str, node: str) -> OperationOut:
    return OperationOut(
        id=op.id,
        kind=op.kind,
        cloud=cloud,
        node=node,
        target_generation=op.target_generation,
        status=op.status,
        attempts=op.attempts,
        reason=op.reason,
        last_error_code=op.last_error_code,
        last_error_message=op.last_error_message,
        created_at=op.created_at,
        started_at=op.started_at,
        finished_at=op.finished_at,
    )


@router.get("/operations", response_model=list[OperationOut])
def list_operations(
    uow: UoW,
    access: Reader,
    status: Annotated[ops.OpStatus | None, Query()] = None,
    cloud: Annotated[str | None, Query(max_length=63)] = None,
    node: Annotated[str | None, Query(max_length=63)] = None,
    before_id: Annotated[int | None, Query(ge=1, description="keyset cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[OperationOut]:
    q = (
        select(Operation, Cloud.code, OrgNode.code)
        .join(Cloud, Cloud.id == Operation.cloud_id)
        .join(OrgNode, OrgNode.id == Operation.node_id)
        .where(within_clause(Operation.scope_path, access.scopes))
        .order_by(Operation.id.desc())
        .limit(limit)
    )
    if status is not None:
        q = q.where(Operation.status == status.value)
    if cloud is not None:
        q = q.where(Cloud.code == cloud)
    if node is not None:
        q = q.where(OrgNode.code == node)
    if before_id is not None:
        q = q.where(Operation.id < before_id)
    return [_out(op, c, n) for op, c, n in uow.session.execute(q).all()]


def _visible(uow: UoW, op_id: int, scopes: tuple[str, ...]) -> tuple[Operation, str, str]:
    row = uow.session.execute(
        select(Operation, Cloud.code, OrgNode.code)
        .join(Cloud, Cloud.id == Operation.cloud_id)
        .join(OrgNode, OrgNode.id == Operation.node_id)
        .where(Operation.id == op_id)
    ).first()
    if row is None or not within(row[0].scope_path, scopes):
        raise NotFoundError(f"no operation {op_id}", code="operation.not_found")
    return row[0], row[1], row[2]


@router.get("/operations/{op_id}", response_model=OperationOut)
def get_operation(op_id: int, uow: UoW, access: Reader) -> OperationOut:
    return _out(*_visible(uow, op_id, access.scopes))


@router.post("/operations/{op_id}/retry", response_model=OperationOut)
def retry_operation(op_id: int, uow: UoW, access: Retrier) -> OperationOut:
    readers = access.principal.scopes_for(Permission.OPERATION_READ)
    op, cloud, node = _visible(uow, op_id, readers)
    access.check_within(op.scope_path, f"operation {op_id}")
    before = op.status
    op = ops.retry(uow.session, op_id)
    audit.record(
        uow.session,
        access.audit,
        "operation.retry",
        "operation",
        str(op_id),
        scope_path=op.scope_path,
        before={"status": before},
        after={"status": op.status},
    )
    out = _out(op, cloud, node)
    uow.commit()
    # The workers' sweep sends pending operations with no recent trigger.
    return out
