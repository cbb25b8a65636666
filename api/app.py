"""The FastAPI application factory. No import-time globals: uvicorn calls
`create_app` (`--factory`), tests call it with their own container."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.routing import BaseRoute

from api import problems
from api.auth import route_permission
from api.routes import (
    audit,
    health,
    migration,
    operations,
    quotas,
    requests,
    topology,
    users,
)
from api.routes import metrics as metrics_route
from controlplane.bootstrap import Container, build_container
from controlplane.observability.cache import MetricsCache
from controlplane.observability.process import observe_request

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(
    container: Container | None = None, *, metrics: MetricsCache | None = None
) -> FastAPI:
    """`metrics`: the DB exporter to serve on /metrics too (`yunguan up`); production
    runs it as its own process (`yunguan exporter`)."""
    container = container or build_container()
    app = FastAPI(
        title="Yunguan",
        summary="Control plane of Hunan's 1+1+N+14 government hybrid cloud",
        version="0.1.0",
    )
    app.state.container = container
    app.state.metrics = metrics
    problems.install(app)

    @app.middleware("http")
    async def _request_id_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        # Accept a caller's id only if it is short and plain, so it is safe in logs.
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.state.request_id = rid
        started, status = time.perf_counter(), 500
        try:
            response = await call_next(request)
            status = response.status_code
        finally:
            # The route template, set by the router on the shared scope (None: no route matched).
            route = request.scope.get("route")
            observe_request(
                request.method,
                route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else None,
                status,
                time.perf_counter() - started,
            )
        response.headers[REQUEST_ID_HEADER] = rid
        return response

    routers = (
        health, metrics_route, topology, users, audit, migration, operations, quotas, requests
    )  # fmt: skip
    for router in (r.router for r in routers):
        _document_permissions(router)
        app.include_router(router)
    return app


def _document_permissions(router: APIRouter) -> None:
    """Copies each route's declared permission into OpenAPI as `x-permission`."""
    for route in router.routes:
        perm = route_permission(route)
        if perm is not None and isinstance(route, APIRoute):
            route.openapi_extra = {**(route.openapi_extra or {}), "x-permission": perm.value}
