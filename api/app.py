"""The FastAPI application factory. No import-time globals: uvicorn calls
`create_app` (`--factory`), tests call it with their own container."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from api import problems
from api.routes import health, topology
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

    app.include_router(health.router)
    app.include_router(topology.router)
    return app
