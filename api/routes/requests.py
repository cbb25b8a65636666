"""Quota requests and reservations: `/v1/requests`, `/v1/reservations`, and the
auto-approval policy of a scope. Every POST takes an `Idempotency-Key`.

Filing is for the project's department members (request:file within the
project); approval is for the approving scope's admins, or for the department
manager drawing on the department's own grant; cancelling is for whoever may
file for the project.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.auth import Access, require
from api.deps import UoW
from api.routes.quota_common import (
    Cont,
    IdemKey,
    IfMatch,
    Outcome,
    actor_of,
    etag,
    expected_generation,
    mutate,
    mutate_staged,
)
from controlplane.identity.principal import within
from controlplane.identity.roles import Permission
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.vocabulary import Architecture, CloudRole, NotFoundError
from quotas import service
from quotas.model import CloudSelector, QuotaRequest, RequestState, Reservation, approving_scope
from quotas.ports import RequestFilter

router = APIRouter(prefix="/v1", tags=["requests"])

Filer = Annotated[Access, Depends(require(Permission.REQUEST_FILE))]
Reader = Annotated[Access, Depends(require(Permission.REQUEST_READ))]
Approver = Annotated[Access, Depends(require(Permission.REQUEST_APPROVE))]
Granter = Annotated[Access, Depends(require(Permission.QUOTA_GRANT))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemIn(_In):
    resource_class: str
    delta: int | None = None
    absolute: int | None = None


class RequestIn(_In):
    project: str = Field(min_length=1, max_length=63)
    cloud: str | None = Field(default=None, max_length=63)
    cloud_role: CloudRole | None = None
    architecture: Architecture | None = None
    items: list[ItemIn] = Field(min_length=1, max_length=20)
    reason: str = Field(min_length=1, max_length=2000)
    needed_by: date | None = None


class DecisionIn(_In):
    cloud: str | None = Field(default=None, max_length=63)
    note: str | None = Field(default=None, max_length=2000)


class ReservationIn(_In):
    project: str = Field(min_length=1, max_length=63)
    cloud: str = Field(min_length=1, max_length=63)
    amounts: dict[str, int] = Field(min_length=1)
    ttl_seconds: int = Field(default=900, ge=1, le=86400)


class AutoApprovalIn(_In):
    limits: dict[str, int] | None = Field(description="per class max delta; null removes")


def _request_out(req: QuotaRequest) -> dict[str, Any]:
    return req.as_dict()


def _visible_request(
    store: SqlQuotaStore, request_id: int, scopes: tuple[str, ...]
) -> QuotaRequest:
    try:
        req = service.get_request(store, request_id)
    except NotFoundError:
        req = None
    if req is None or not within(req.project.path, scopes):
        raise NotFoundError(f"no request {request_id}", code="request.not_found")
    return req


def _decision_scope(store: SqlQuotaStore, access: Access, request_id: int) -> str | None:
    """Who may decide a request, and whose headroom an approval draws on: the
    approving scope's admins draw on it (None), a department manager only on
    the department's own grant (its code). Anyone else: 404 or 403."""
    readers = access.principal.scopes_for(Permission.REQUEST_READ)
    req = _visible_request(store, request_id, readers)
    chain = store.chain(req.project.code)
    scope, department = approving_scope(chain), chain[-2]
    if within(scope.path, access.scopes):
        return None
    if within(department.path, access.scopes):
        return department.code
    access.check_within(scope.path, f"request {request_id}")
    return None


@router.post("/requests", status_code=201)
async def file_request(
    body: RequestIn, request: Request, access: Filer, key: IdemKey = None
) -> JSONResponse:
    # Two steps (quota_common.mutate_staged): the request is recorded before
    # its auto-approval takes the grant locks.
    def record(store: SqlQuotaStore, _s: Session) -> service.Filed:
        if body.cloud is not None:
            # The store remembers this lookup: record_request's own locate is free.
            chain = store.locate(body.cloud, body.project)[1]
        else:
            chain = store.chain(body.project)
        project = chain[-1]
        if not access.visible(project.path):
            raise NotFoundError(f"no project {body.project!r}", code="org.not_found")
        access.check_within(project.path, f"project {body.project!r}")
        raw = [i.model_dump(exclude_none=True) for i in body.items]
        selector = CloudSelector(body.cloud_role, body.architecture) if body.cloud_role else None
        return service.record_request(
            store,
            actor_of(access),
            body.project,
            service.parse_items(raw),
            reason=body.reason,
            cloud_code=body.cloud,
            selector=selector,
            needed_by=body.needed_by,
        )

    def settle(store: SqlQuotaStore, _s: Session, filed: service.Filed) -> Outcome:
        result = service.settle_filing(store, filed)
        out = {**_request_out(result.request), "auto_approved": result.auto_approved}
        return 201, out, result.changes, result.request.generation

    # The hottest route: the container from the app rather than as one more
    # dependency for FastAPI to resolve per request.
    def announce(store: SqlQuotaStore) -> None:
        if body.cloud is not None:
            store.expect_locate(body.cloud, body.project)

    container = request.app.state.container
    body_json = body.model_dump(mode="json")
    return await mutate_staged(
        container, request, access, key, body_json, record, settle, hint=announce
    )


@router.get("/requests")
def list_requests(
    uow: UoW,
    access: Reader,
    state: Annotated[RequestState | None, Query()] = None,
    project: Annotated[str | None, Query(max_length=63)] = None,
    cloud: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    flt = RequestFilter(
        state=state, project=project, cloud=cloud, within=access.scopes, limit=limit, offset=offset
    )
    return [_request_out(r) for r in service.list_requests(SqlQuotaStore(uow.session), flt)]


@router.get("/requests/{request_id}")
def get_request(request_id: int, uow: UoW, access: Reader) -> JSONResponse:
    req = _visible_request(SqlQuotaStore(uow.session), request_id, access.scopes)
    return JSONResponse(_request_out(req), headers={"ETag": etag(req.generation)})


@router.post("/requests/{request_id}/approve")
async def approve(
    request_id: int,
    body: DecisionIn,
    request: Request,
    container: Cont,
    access: Approver,
    key: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
        draw_from = _decision_scope(store, access, request_id)
        result = service.approve_request(
            store,
            actor_of(access),
            request_id,
            cloud_code=body.cloud,
            draw_from=draw_from,
            note=body.note,
            expected_generation=expected_generation(if_match),
        )
        return 200, _request_out(result.request), result.changes, result.request.generation

    return await mutate(container, request, access, key, body.model_dump(), work)


@router.post("/requests/{request_id}/reject")
async def reject(
    request_id: int,
    body: DecisionIn,
    request: Request,
    container: Cont,
    access: Approver,
    key: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
        _decision_scope(store, access, request_id)
        result = service.reject_request(
            store,
            actor_of(access),
            request_id,
            note=body.note,
            expected_generation=expected_generation(if_match),
        )
        return 200, _request_out(result.request), result.changes, result.request.generation

    return await mutate(container, request, access, key, body.model_dump(), work)


@router.post("/requests/{request_id}/cancel")
async def cancel(
    request_id: int,
    request: Request,
    container: Cont,
    access: Filer,
    key: IdemKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
        readers = access.principal.scopes_for(Permission.REQUEST_READ)
        req = _visible_request(store, request_id, readers)
        access.check_within(req.project.path, f"request {request_id}")
        result = service.cancel_request(
            store, actor_of(access), request_id, expected_generation=expected_generation(if_match)
        )
        return 200, _request_out(result.request), result.changes, result.request.generation

    return await mutate(container, request, access, key, {}, work)


def _reservation_out(res: Reservation) -> dict[str, Any]:
    return res.as_dict()


@router.post("/reservations", status_code=201)
async def reserve(
    body: ReservationIn, request: Request, container: Cont, access: Granter, key: IdemKey = None
) -> JSONResponse:
    def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
        project = store.chain(body.project)[-1]
        if not access.visible(project.path):
            raise NotFoundError(f"no project {body.project!r}", code="org.not_found")
        access.check_within(project.path, f"project {body.project!r}")
        result = service.reserve(
            store,
            actor_of(access),
            body.project,
            body.cloud,
            body.amounts,
            ttl=timedelta(seconds=body.ttl_seconds),
        )
        return 201, _reservation_out(result.reservation), result.changes, None

    return await mutate(container, request, access, key, body.model_dump(), work)


@router.get("/reservations")
def list_reservations(
    uow: UoW,
    access: Granter,
    project: Annotated[str | None, Query(max_length=63)] = None,
) -> list[dict[str, Any]]:
    rows = service.list_reservations(
        SqlQuotaStore(uow.session), project=project, within=access.scopes
    )
    return [_reservation_out(r) for r in rows]


def _settle(verb: str) -> Any:
    async def settle(
        reservation_id: int, request: Request, container: Cont, access: Granter, key: IdemKey = None
    ) -> JSONResponse:
        def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
            fn = service.commit_reservation if verb == "commit" else service.release_reservation
            try:
                res = store.reservation(reservation_id)
            except NotFoundError:
                res = None
            if res is None or not within(res.project.path, access.scopes):
                raise NotFoundError(
                    f"no reservation {reservation_id}", code="reservation.not_found"
                )
            result = fn(store, actor_of(access), reservation_id)
            return 200, _reservation_out(result.reservation), result.changes, None

        return await mutate(container, request, access, key, {"verb": verb}, work)

    settle.__name__ = f"{verb}_reservation"
    return settle


router.post("/reservations/{reservation_id}/commit")(_settle("commit"))
router.post("/reservations/{reservation_id}/release")(_settle("release"))


@router.put("/auto-approval/{scope}")
async def set_auto_approval(
    scope: str, body: AutoApprovalIn, request: Request, container: Cont, access: Granter
) -> JSONResponse:
    def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
        node = store.chain(scope)[-1]
        if not access.visible(node.path):
            raise NotFoundError(f"no organisation node {scope!r}", code="org.not_found")
        access.check_within(node.path, f"scope {scope!r}")
        change = service.set_auto_approval(store, actor_of(access), scope, body.limits)
        return 200, {"scope": scope, "limits": body.limits}, (change,), None

    return await mutate(container, request, access, None, body.model_dump(), work)
