"""The FastAPI application factory. No import-time globals: uvicorn calls
`create_app` (`--factory`), tests call it with their own container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter

from api import problems
from api.auth import route_permission
from api.middleware import REQUEST_ID_HEADER, RequestContext
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

__all__ = ["REQUEST_ID_HEADER", "create_app"]


def create_app(
    container: Container | None = None, *, metrics: MetricsCache | None = None
) -> FastAPI:
    """`metrics`: the DB exporter to serve on /metrics too (`yunguan up`); production
    runs it as its own process (`yunguan exporter`)."""
    container = container or build_container()
    threads = container.settings.api.threads

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's default thread pool: size it per settings.
        to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Yunguan",
        summary="Control plane of Hunan's 1+1+N+14 government hybrid cloud",
        version="0.1.0",
        # Metrics go to Prometheus (api.middleware, controlplane.observability);
        # FastAPI's own OpenTelemetry hooks would only cost every request a check.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.container = container
    app.state.metrics = metrics
    app.state.auth_inflight = {}  # api.auth: one principal lookup per bearer at a time
    app.state.auth_refreshing = {}  # api.auth: bearers being refreshed ahead
    problems.install(app)

    app.add_middleware(RequestContext)

    # Routes are matched one by one in this order (FastAPI's router is a
    # linear scan): the probes and the admission routes, the hottest, first.
    # No two routers share a path, so the order changes nothing else.
    routers = (
        health, requests, quotas, metrics_route, topology, users, audit, migration, operations
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
