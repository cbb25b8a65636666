"""Request id and request metrics, as a plain ASGI middleware.

Not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs the route
in a separate task and copies the response through a memory stream, which
cost more CPU per request than the quota admission's own Python work
(bench/quota_http.py). This wraps `send` instead and touches nothing else.
"""

from __future__ import annotations

import random
import re
import time

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.observability.process import observe_request

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _new_id() -> str:
    """32 random hex digits, as uuid4().hex, from the process's Mersenne
    Twister (seeded from the OS at start, reseeded in a forked child) rather
    than os.urandom: CPython releases the GIL around the getrandom() call,
    and the event loop then waits for the group committer's thread to hand it
    back (py-spy under bench/quota_http.py: a fifth of the event loop's
    samples were in uuid4). A request id correlates logs; it grants nothing,
    so it needs to be unique, not unpredictable."""
    return f"{random.getrandbits(128):032x}"


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _HEADER_KEY:
            text = value.decode("latin-1")
            # Accept a caller's id only if it is short and plain, so it is safe in logs.
            return text if _SAFE_REQUEST_ID.match(text) else _new_id()
    return _new_id()


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        # Request.state reads this dict, so routes see request.state.request_id.
        scope.setdefault("state", {})["request_id"] = rid
        started, status = time.perf_counter(), 500
        header = (_HEADER_KEY, rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            observe_request(scope["method"], _template(scope), status, elapsed)


def _template(scope: Scope) -> str | None:
    """The route template, set by the router on the shared scope (None: no route matched)."""
    route = scope.get("route")
    return route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else None
