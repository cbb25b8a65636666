"""Closing the loop on requests: once a tenant's quota is pushed, the approved
requests it carried become `applied`; if the push fails for good, `failed`
with the provider's message. Runs in the worker's recording transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from controlplane.identity import audit
from controlplane.identity.audit import AuditContext
from controlplane.quotastore.store import SqlQuotaStore
from quotas import service
from quotas.model import SYSTEM, RequestState
from quotas.ports import RequestFilter

WORKER = AuditContext(principal=None, source="worker")


def settle_requests(
    session: Session, cloud: str, project: str, claimed_at: datetime, failure: str | None
) -> int:
    """Marks the approved requests of (project, cloud) decided before the run
    began; later approvals wait for the run their own grant change triggered."""
    store = SqlQuotaStore(session)
    flt = RequestFilter(state=RequestState.APPROVED, project=project, cloud=cloud, limit=500)
    settled = 0
    for req in service.list_requests(store, flt):
        if req.decided_at is not None and req.decided_at > claimed_at:
            continue
        if failure is None:
            result = service.mark_applied(store, SYSTEM, req.id)
        else:
            result = service.mark_failed(store, SYSTEM, req.id, failure[:2000])
        for c in result.changes:
            audit.record(
                session,
                WORKER,
                c.action,
                c.object_type,
                c.object_id,
                scope_path=c.scope_path,
                before=c.before,
                after=c.after,
            )
        settled += 1
    return settled
