"""Quota requests: file, approve, reject, cancel; applied or failed later.

    pending ──approve──▶ approved ──▶ applied
       │                     └──────▶ failed
       ├──reject───▶ rejected
       └──cancel───▶ cancelled

A department member files a request for a project on one cloud (or on "any
cloud of role X and architecture Y", resolved by the approver). It is
approved at the scope that owns the headroom (`quotas.model.approving_scope`):
the approval re-checks and takes the headroom in the same locked transaction
(`quotas.grants.admit`). An auto-approval policy of that scope approves at
filing what fits the department's own unallocated headroom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from controlplane.vocabulary import ConflictError, InvalidInputError, OrgLevel
from quotas.grants import admit, owner_index, source_index, utc
from quotas.inputs import MAX_REASON, check_items, check_supported
from quotas.model import (
    Actor,
    Change,
    CloudRef,
    CloudSelector,
    GrantRow,
    NodeRef,
    QuotaRequest,
    RequestItem,
    RequestState,
    approving_scope,
)
from quotas.ports import NewRequest, QuotaStore, RequestFilter, Segment

_NEXT: dict[RequestState, frozenset[RequestState]] = {
    RequestState.PENDING: frozenset(
        {RequestState.APPROVED, RequestState.REJECTED, RequestState.CANCELLED}
    ),
    RequestState.APPROVED: frozenset({RequestState.APPLIED, RequestState.FAILED}),
}


@dataclass(frozen=True)
class RequestResult:
    request: QuotaRequest
    grants: tuple[GrantRow, ...] = ()  # the project's rows after an approval
    changes: tuple[Change, ...] = ()
    auto_approved: bool = False


def can_move(state: RequestState, to: RequestState) -> bool:
    return to in _NEXT.get(state, frozenset())


def _move(req: QuotaRequest, to: RequestState, expected_generation: int | None) -> None:
    if expected_generation is not None and req.generation != expected_generation:
        raise ConflictError(
            f"request {req.id} changed (generation {req.generation}, expected "
            f"{expected_generation}); re-read and retry",
            code="request.generation_mismatch",
            extra={"expected": expected_generation, "generation": req.generation},
        )
    if not can_move(req.state, to):
        raise ConflictError(
            f"request {req.id} is {req.state.value}; it cannot become {to.value}",
            code="request.state_conflict",
            extra={"id": req.id, "state": req.state.value, "wanted": to.value},
        )


def _check_project(chain: list[NodeRef]) -> list[NodeRef]:
    if chain[-1].level is not OrgLevel.PROJECT:
        raise InvalidInputError(
            f"{chain[-1].code!r} is a {chain[-1].level.value}, not a project",
            code="quota.not_a_project",
        )
    return chain


def _project_chain(store: QuotaStore, code: str) -> list[NodeRef]:
    return _check_project(store.chain(code))


def _usable(cloud: CloudRef, chain: Sequence[NodeRef], items: Sequence[RequestItem]) -> None:
    if not cloud.enabled:
        raise InvalidInputError(f"cloud {cloud.code!r} is disabled", code="quota.cloud_disabled")
    owner_index(cloud, chain)
    check_supported(cloud, [i.resource_class for i in items])


def _check_selector(
    store: QuotaStore, selector: CloudSelector, chain: list[NodeRef], items: Sequence[RequestItem]
) -> None:
    candidates = store.clouds(selector.role, selector.architecture)
    errors: list[InvalidInputError] = []
    for cloud in candidates:
        try:
            _usable(cloud, chain, items)
            return
        except InvalidInputError as exc:
            errors.append(exc)
    if errors and all(e.code == "quota.unsupported_class" for e in errors):
        raise errors[0]
    raise InvalidInputError(
        f"no enabled cloud matches {selector.describe()} for {chain[-1].code!r}",
        code="quota.no_matching_cloud",
        extra={"candidates": [c.code for c in candidates]},
    )


@dataclass(frozen=True)
class Filed:
    """A request recorded as pending, before its auto-approval is tried."""

    request: QuotaRequest
    cloud: CloudRef | None
    chain: list[NodeRef]
    at: datetime


def file_request(
    store: QuotaStore,
    actor: Actor,
    project_code: str,
    items: Sequence[RequestItem],
    *,
    reason: str,
    cloud_code: str | None = None,
    selector: CloudSelector | None = None,
    needed_by: date | None = None,
    now: datetime | None = None,
) -> RequestResult:
    """File a request; approve it at once when the scope's auto-approval policy covers it."""
    filed = record_request(
        store,
        actor,
        project_code,
        items,
        reason=reason,
        cloud_code=cloud_code,
        selector=selector,
        needed_by=needed_by,
        now=now,
    )
    return settle_filing(store, filed)


def record_request(
    store: QuotaStore,
    actor: Actor,
    project_code: str,
    items: Sequence[RequestItem],
    *,
    reason: str,
    cloud_code: str | None = None,
    selector: CloudSelector | None = None,
    needed_by: date | None = None,
    now: datetime | None = None,
) -> Filed:
    """The first half of `file_request`: check and record the request as
    pending (with its outbox row). It takes no grant lock, so a caller that
    files many at once (the API's group commit) records them all first and
    then settles them under one acquisition of the locks."""
    now = utc(now)
    checked = check_items(items)
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInputError(
            f"reason: give 1 to {MAX_REASON} characters", code="request.invalid"
        )
    if (cloud_code is None) == (selector is None):
        raise InvalidInputError(
            "name either a cloud or a cloud selector (role, architecture)",
            code="request.invalid",
        )
    if needed_by is not None and needed_by < now.date():
        raise InvalidInputError(
            f"needed_by {needed_by.isoformat()} is in the past", code="request.invalid"
        )
    cloud = None
    if cloud_code is not None:
        cloud, chain = store.locate(cloud_code, project_code)
        _check_project(chain)
    else:
        chain = _project_chain(store, project_code)
    if cloud is not None:
        _usable(cloud, chain, checked)
    elif selector is not None:
        _check_selector(store, selector, chain, checked)
    req = store.add_request(
        NewRequest(chain[-1], cloud, selector, checked, reason, needed_by, actor.id), now
    )
    emit_request_changed(store, actor, req)
    if cloud is not None:
        segments = _auto_approval_segments(store, req, chain)
        if segments:
            store.will_lock(cloud, segments)
    return Filed(req, cloud, chain, now)


def settle_filing(store: QuotaStore, filed: Filed) -> RequestResult:
    """The second half: approve at once what the approving scope's policy
    covers and the department's headroom fits; otherwise it stays pending."""
    if filed.cloud is not None:
        auto = _try_auto_approval(store, filed.request, filed.cloud, filed.chain, filed.at)
        if auto is not None:
            return auto
    return RequestResult(filed.request, changes=(_filed(filed.request),))


def _filed(req: QuotaRequest) -> Change:
    return Change(
        "quota.request.file", "quota_request", str(req.id), req.project.path, None, req.as_dict()
    )


def emit_request_changed(store: QuotaStore, actor: Actor, req: QuotaRequest) -> None:
    """The outbox row of any request transition. Ids only: the relay re-reads the
    request and acts on its state (approved → push the project's quota), so the
    row can be written before the grant locks are taken."""
    store.emit(
        "quota.request.changed",
        "quota_request",
        str(req.id),
        {"request": req.id, "project": req.project.code, "by": actor.id},
    )


def _auto_approval_segments(
    store: QuotaStore, req: QuotaRequest, chain: list[NodeRef]
) -> list[Segment] | None:
    """The rows an auto-approval would lock (department → project per class),
    or None when the approving scope's policy does not cover the request."""
    policy = store.auto_approval(approving_scope(chain))
    if policy is None or not policy.covers(req.items):
        return None
    # Only the department's own unallocated headroom: source = the department.
    return [(i.resource_class, chain[-2:]) for i in req.items]


def _try_auto_approval(
    store: QuotaStore, req: QuotaRequest, cloud: CloudRef, chain: list[NodeRef], now: datetime
) -> RequestResult | None:
    if _auto_approval_segments(store, req, chain) is None:
        return None
    scope = approving_scope(chain)
    try:
        adm = admit(store, cloud, chain, len(chain) - 2, req.items, now)
    except ConflictError as exc:
        if exc.code == "quota.exceeded":
            return None  # stays pending for a human
        raise
    return _approved(store, req, cloud, f"auto:{scope.code}", None, adm.after, now, auto=True)


def _approved(
    store: QuotaStore,
    req: QuotaRequest,
    cloud: CloudRef,
    by: str,
    note: str | None,
    rows: Sequence[GrantRow],
    now: datetime,
    *,
    auto: bool,
) -> RequestResult:
    done = replace(
        req,
        state=RequestState.APPROVED,
        cloud=cloud,
        decided_by=by,
        decided_at=now,
        note=note,
        generation=req.generation + 1,
        updated_at=now,
    )
    store.save_request(done)
    granted = {r.resource_class.value: r.granted for r in rows}
    change = Change(
        "quota.request.approve",
        "quota_request",
        str(req.id),
        req.project.path,
        req.as_dict(),
        {**done.as_dict(), "granted": granted},
    )
    changes = (_filed(req), change) if auto else (change,)
    return RequestResult(done, tuple(rows), changes, auto_approved=auto)


def approve_request(
    store: QuotaStore,
    actor: Actor,
    request_id: int,
    *,
    cloud_code: str | None = None,
    draw_from: str | None = None,
    expected_generation: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> RequestResult:
    """Approve a pending request, taking the headroom atomically.

    `cloud_code` resolves a request filed for "any cloud of role X";
    `draw_from` is the scope whose headroom is used (default: the approving
    scope; the route may pass a higher one the approver administers).
    Fails with `quota.exceeded` listing requested, granted and free.
    """
    now = utc(now)
    req = store.request(request_id, lock=True)
    _move(req, RequestState.APPROVED, expected_generation)
    cloud = _resolve_cloud(store, req, cloud_code)
    chain = _project_chain(store, req.project.code)
    _usable(cloud, chain, req.items)
    source = source_index(cloud, chain, draw_from or approving_scope(chain).code)
    emit_request_changed(store, actor, req)
    adm = admit(store, cloud, chain, source, req.items, now)
    return _approved(store, req, cloud, actor.id, note, adm.after, now, auto=False)


def _resolve_cloud(store: QuotaStore, req: QuotaRequest, cloud_code: str | None) -> CloudRef:
    if req.cloud is not None:
        if cloud_code is not None and cloud_code != req.cloud.code:
            raise InvalidInputError(
                f"request {req.id} is for cloud {req.cloud.code!r}, not {cloud_code!r}",
                code="request.cloud_mismatch",
            )
        return req.cloud
    assert req.selector is not None
    if cloud_code is None:
        raise InvalidInputError(
            f"request {req.id} asks for {req.selector.describe()}: name the cloud to use",
            code="request.cloud_required",
        )
    cloud = store.cloud(cloud_code)
    if not req.selector.matches(cloud):
        raise InvalidInputError(
            f"cloud {cloud.code!r} is not {req.selector.describe()}",
            code="request.cloud_mismatch",
        )
    return cloud


def _decide(
    store: QuotaStore,
    actor: Actor,
    request_id: int,
    to: RequestState,
    note: str | None,
    expected_generation: int | None,
    now: datetime | None,
) -> RequestResult:
    at = utc(now)
    req = store.request(request_id, lock=True)
    _move(req, to, expected_generation)
    decided = to in {RequestState.REJECTED, RequestState.CANCELLED}
    done = replace(
        req,
        state=to,
        decided_by=actor.id if decided else req.decided_by,
        decided_at=at if decided else req.decided_at,
        note=note if note is not None else req.note,
        generation=req.generation + 1,
        updated_at=at,
    )
    store.save_request(done)
    emit_request_changed(store, actor, req)
    verb = {
        RequestState.REJECTED: "reject",
        RequestState.CANCELLED: "cancel",
        RequestState.APPLIED: "apply",
        RequestState.FAILED: "fail",
    }[to]
    change = Change(
        f"quota.request.{verb}",
        "quota_request",
        str(req.id),
        req.project.path,
        req.as_dict(),
        done.as_dict(),
    )
    return RequestResult(done, changes=(change,))


def reject_request(
    store: QuotaStore,
    actor: Actor,
    request_id: int,
    *,
    note: str | None = None,
    expected_generation: int | None = None,
    now: datetime | None = None,
) -> RequestResult:
    return _decide(store, actor, request_id, RequestState.REJECTED, note, expected_generation, now)


def cancel_request(
    store: QuotaStore,
    actor: Actor,
    request_id: int,
    *,
    expected_generation: int | None = None,
    now: datetime | None = None,
) -> RequestResult:
    """The requester withdraws a pending request (an approved one is a conflict)."""
    return _decide(store, actor, request_id, RequestState.CANCELLED, None, expected_generation, now)


def mark_applied(
    store: QuotaStore, actor: Actor, request_id: int, *, now: datetime | None = None
) -> RequestResult:
    """The provider now enforces the approved grant (called by the relay task)."""
    return _decide(store, actor, request_id, RequestState.APPLIED, None, None, now)


def mark_failed(
    store: QuotaStore, actor: Actor, request_id: int, reason: str, *, now: datetime | None = None
) -> RequestResult:
    return _decide(store, actor, request_id, RequestState.FAILED, reason, None, now)


def get_request(store: QuotaStore, request_id: int) -> QuotaRequest:
    return store.request(request_id)


def list_requests(store: QuotaStore, flt: RequestFilter) -> list[QuotaRequest]:
    return store.requests(flt)


def request_approving_scope(store: QuotaStore, request_id: int) -> NodeRef:
    """The scope that approves this request (for the identity layer's check)."""
    return approving_scope(store.chain(store.request(request_id).project.code))
