"""The audit log for auditors: filtered by scope in SQL, keyset-paginated by seq."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import Access, require
from api.deps import UoW
from api.routes.identity_schemas import AuditOut, AuditPage
from controlplane.identity import audit
from controlplane.identity.roles import Permission

router = APIRouter(prefix="/v1", tags=["audit"])

Auditor = Annotated[Access, Depends(require(Permission.AUDIT_READ))]


@router.get("/audit", response_model=AuditPage)
def list_audit(
    uow: UoW,
    access: Auditor,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    object_type: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query(description="inclusive, ISO 8601 with zone")] = None,
    until: Annotated[datetime | None, Query(description="exclusive")] = None,
    after_seq: Annotated[int, Query(ge=0, description="keyset cursor")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    q = audit.query(
        access.scopes,
        action=action,
        actor=actor,
        object_type=object_type,
        since=since,
        until=until,
        after_seq=after_seq,
        limit=limit,
    )
    rows = audit.entries(uow.session, q)
    return AuditPage(
        items=[AuditOut.of(e) for e in rows],
        next_after_seq=rows[-1].seq if len(rows) == limit else None,
    )
