"""The FastAPI application factory. No import-time globals: uvicorn calls
`create_app` (`--factory`), tests call it with their own container."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, APIRouter

from api import problems
from api.auth import route_permission
from api.routes import audit, health, topology, users
from controlplane.bootstrap import Container, build_container

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(container: Container | None = None) -> FastAPI:
    container = container or build_container()
    app = FastAPI(
        title="Yunguan",
        summary="Control plane of Hunan's 1+1+N+14 government hybrid cloud",
        version="0.1.0",
    )
    app.state.container = container
    problems.install(app)

    @app.middleware("http")
    async def _request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        # Accept a caller's id only if it is short and plain, so it is safe in logs.
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.state.request_id = rid
        response = await call_next(request)
        response.headers[REQUEST_ID_HEADER] = rid
        return response

    for router in (health.router, topology.router, users.router, audit.router):
        _document_permissions(router)
        app.include_router(router)
    return app


def _document_permissions(router: APIRouter) -> None:
    """Copies each route's declared permission into OpenAPI as `x-permission`."""
    for route in router.routes:
        perm = route_permission(route)
        if perm is not None and isinstance(route, APIRoute):
            route.openapi_extra = {**(route.openapi_extra or {}), "x-permission": perm.value}
