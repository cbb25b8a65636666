"""RFC 9457 problem details: the only place that maps Yunguan's errors to HTTP.

Every error body is `application/problem+json` with `type`, `title`, `status`,
`detail`, a stable `code` clients can match on, and the `request_id` that
also appears in the logs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane.vocabulary import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    UnauthenticatedError,
    YunguanError,
)

log = logging.getLogger("yunguan.api")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://yunguan.hunan.gov.cn/problems/"

_STATUS: list[tuple[type[YunguanError], int]] = [
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (PreconditionFailedError, 412),
    (ConflictError, 409),
    (InvalidInputError, 422),
]


def status_for(exc: YunguanError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def problem_response(
    request: Request, status: int, code: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request.state, "request_id", None),
        "instance": request.url.path,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(YunguanError)
    async def _domain(request: Request, exc: YunguanError) -> JSONResponse:
        status = status_for(exc)
        extra: dict[str, Any] = dict(exc.extra)
        if exc.problems:
            extra["errors"] = [{"where": p.where, "message": p.message} for p in exc.problems]
        resp = problem_response(
            request, status, exc.code, _TITLES.get(status, "Error"), exc.message, **extra
        )
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="yunguan"'
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors[:3])
        return problem_response(
            request,
            422,
            "request.invalid",
            _TITLES[422],
            detail or "invalid request",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "route.not_found", 405: "method.not_allowed"}.get(
            exc.status_code, f"http.{exc.status_code}"
        )
        resp = problem_response(
            request, exc.status_code, code, _TITLES.get(exc.status_code, "Error"), str(exc.detail)
        )
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every pooled database connection stayed busy for database_pool.timeout_s:
        # overload, not a fault of this request; the client may retry.
        log.warning(
            "no free database connection (request_id=%s)",
            getattr(request.state, "request_id", None),
        )
        resp = problem_response(
            request,
            503,
            "database.busy",
            _TITLES[503],
            "the database is busy; retry shortly",
        )
        resp.headers["Retry-After"] = "1"
        return resp

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log under the request id; the client gets no internals.
        log.exception("unhandled error (request_id=%s)", getattr(request.state, "request_id", None))
        return problem_response(
            request,
            500,
            "internal",
            _TITLES[500],
            "an internal error occurred; quote the request_id",
        )
