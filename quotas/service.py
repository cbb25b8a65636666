"""The quota use cases in one place, for the API routes and the CLI.

    from quotas import service
    with UnitOfWork(factory) as uow:                      # or run_in_transaction(...)
        store = SqlQuotaStore(uow.session)
        result = service.approve_request(store, actor, 42)
        for change in result.changes:
            audit.record(uow.session, ctx, change.action, change.object_type,
                         change.object_id, scope_path=change.scope_path,
                         before=change.before, after=change.after)
        uow.commit()

Every mutating use case takes the store (bound to the caller's transaction),
an `Actor` and plain typed inputs; raises InvalidInputError / NotFoundError /
ConflictError with stable codes (numbers in `extra`); writes its outbox row;
and returns the new state plus `changes` for the audit log.
"""

from quotas.grants import (
    GrantResult,
    admit,
    raise_grant,
    set_capacity,
    set_grant,
    set_observed_usage,
)
from quotas.inputs import parse_items
from quotas.model import (
    Actor,
    Change,
    CloudSelector,
    RequestItem,
    approving_scope,
    granting_scope,
)
from quotas.ports import QuotaStore, RequestFilter
from quotas.requests import (
    Filed,
    RequestResult,
    approve_request,
    cancel_request,
    file_request,
    get_request,
    list_requests,
    mark_applied,
    mark_failed,
    record_request,
    reject_request,
    request_approving_scope,
    settle_filing,
)
from quotas.reservations import (
    ReservationResult,
    commit_reservation,
    expire_reservations,
    list_reservations,
    release_reservation,
    reserve,
)
from quotas.views import check_invariants, grant_tree, pools, set_auto_approval

__all__ = [
    "Actor",
    "Change",
    "CloudSelector",
    "Filed",
    "GrantResult",
    "QuotaStore",
    "RequestFilter",
    "RequestItem",
    "RequestResult",
    "ReservationResult",
    "admit",
    "approve_request",
    "approving_scope",
    "cancel_request",
    "check_invariants",
    "commit_reservation",
    "expire_reservations",
    "file_request",
    "get_request",
    "grant_tree",
    "granting_scope",
    "list_requests",
    "list_reservations",
    "mark_applied",
    "mark_failed",
    "parse_items",
    "pools",
    "raise_grant",
    "record_request",
    "reject_request",
    "release_reservation",
    "request_approving_scope",
    "reserve",
    "set_auto_approval",
    "set_capacity",
    "set_grant",
    "set_observed_usage",
    "settle_filing",
]
