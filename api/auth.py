"""The one authorisation point.

Every `/v1` route declares `access: Annotated[Access, Depends(require(P))]`.
`require` authenticates the bearer (an API token, or an OIDC JWT when enabled),
answers 401 when that fails and 403 when the caller holds `P` nowhere, and
hands the route the scope paths where `P` holds. Routes filter their queries
by those paths (404 outside them, never a leak of existence) and use
`Access.check_within` for writes on objects they could read (403).
`create_app` copies each route's permission into the OpenAPI document as
`x-permission`; a test fails for any `/v1` route without one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from fastapi import Request

from controlplane.bootstrap import Container
from controlplane.db.base import utcnow
from controlplane.db.uow import UnitOfWork
from controlplane.identity.audit import AuditContext
from controlplane.identity.principal import Principal, on_path, within
from controlplane.identity.roles import Permission
from controlplane.identity.store import AuthError, IdentityStore
from controlplane.identity.tokens import PREFIX
from controlplane.vocabulary import ForbiddenError, NotFoundError, UnauthenticatedError

log = logging.getLogger("yunguan.auth")
PERMISSION_ATTR = "__yunguan_permission__"


@dataclass(frozen=True)
class Access:
    principal: Principal
    permission: Permission
    scopes: tuple[str, ...]  # org paths where `permission` holds
    read_scopes: tuple[str, ...]  # where the caller may at least see org objects
    request_id: str | None
    source: str | None

    @property
    def audit(self) -> AuditContext:
        return AuditContext(self.principal, self.request_id, self.source)

    def visible(self, path: str) -> bool:
        return on_path(path, self.read_scopes)

    def check_within(self, path: str, what: str) -> None:
        """For writes: 404 when the object is invisible, 403 when only readable."""
        if within(path, self.scopes):
            return
        if self.visible(path):
            raise ForbiddenError(
                f"{self.principal.login} may not {self.permission.value} on {what}",
                code="auth.forbidden",
            )
        raise NotFoundError(f"no {what}", code="object.not_found")


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise UnauthenticatedError(
            "authentication required: send a bearer token", code="auth.missing"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError(
            "the Authorization header must be 'Bearer <token>'", code="auth.malformed"
        )
    return token.strip()


async def authenticate(request: Request, container: Container) -> Principal:
    """The caller's principal: from the per-process cache when it is fresh, else
    looked up in a worker thread (the event loop never waits on the database).

    One lookup per bearer at a time: when a busy client's cached entry expires,
    the requests it has in flight wait for the first one's lookup instead of
    each running their own (a herd of identical queries and last-used stamps).
    And an entry that came due (`PrincipalCache.due`: at a point drawn between
    half and 7/8 of its life) is refreshed in the background while it still
    answers, at most `REFRESH_SLOTS` at a time, so the entries of busy clients —
    all filled at the same moment after a restart — neither expire together
    and stall a burst of requests behind their lookups, nor refresh together
    and take the GIL from the event loop in one burst.
    """
    token = _bearer(request)
    cache = container.principals
    key = cache.key(token)
    inflight: dict[str, asyncio.Future[Principal]] = request.app.state.auth_inflight
    while True:
        cached = cache.get(key, utcnow())
        if cached is not None:
            if cache.due(key) and key not in inflight:
                _refresh_ahead(request, container, token, key)
            return cached
        pending = inflight.get(key)
        if pending is None:
            return await _lead(request, container, token, key)
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # The lookup we waited for was cancelled, not us: look again.


# Background refreshes a process runs at once. Each is a lookup in a thread
# beside the event loop; dozens at once (busy clients whose entries came due
# together) take the GIL from the loop in a burst that every request in flight
# waits out. A due entry still answers, so one that finds no free slot waits
# for a later request to start it.
REFRESH_SLOTS = 2


def _refresh_ahead(request: Request, container: Container, token: str, key: str) -> None:
    # bearer key -> its refresh task: the slots in use, and the reference that
    # keeps a running task from being collected.
    refreshing: dict[str, asyncio.Task[None]] = request.app.state.auth_refreshing
    if key in refreshing or len(refreshing) >= REFRESH_SLOTS:
        return
    refreshing[key] = asyncio.create_task(_refresh(request, container, token, key))
    refreshing[key].add_done_callback(lambda _task: refreshing.pop(key, None))


async def _refresh(request: Request, container: Container, token: str, key: str) -> None:
    try:
        await _lead(request, container, token, key)
    except UnauthenticatedError:
        container.principals.drop(key)  # revoked meanwhile: the next request hears 401
    except Exception:  # a database hiccup: the entry answers until it expires
        log.warning("background refresh of a principal failed", exc_info=True)


async def _lead(request: Request, container: Container, token: str, key: str) -> Principal:
    """The lookup the others wait for (see `authenticate`)."""
    inflight: dict[str, asyncio.Future[Principal]] = request.app.state.auth_inflight
    future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
    inflight[key] = future
    try:
        principal = await to_thread.run_sync(_look_up, request, container, token)
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: nobody may be waiting
        raise
    else:
        future.set_result(principal)
    finally:
        del inflight[key]
    container.principals.put(key, principal, principal.expires_at)
    return principal


def _look_up(request: Request, container: Container, token: str) -> Principal:
    with UnitOfWork(container.session_factory) as uow:
        try:
            if token.startswith(PREFIX) or container.oidc is None:
                principal = IdentityStore(uow.session).authenticate(
                    container.settings.effective_secret_key, token, utcnow()
                )
            else:
                principal = container.oidc.principal(uow.session, token)
        except AuthError as exc:
            # Never log the token; the request id ties this line to the response.
            log.info("refused bearer (%s) request_id=%s", exc.code, request.state.request_id)
            raise UnauthenticatedError(exc.message, code=exc.code) from None
        uow.commit()  # last-used stamp, just-in-time OIDC user
    return principal


def require(permission: Permission) -> Callable[..., Coroutine[Any, Any, Access]]:
    # A coroutine, like the routes on the hot path: a sync dependency would
    # cost each request a hop to the thread pool and back.
    async def dependency(request: Request) -> Access:
        # The container straight from the app, not as a sub-dependency: FastAPI
        # resolves every dependency node per request, at a cost comparable to
        # the rest of a cheap request's work (bench/quota_http.py).
        container: Container = request.app.state.container
        principal = await authenticate(request, container)
        request.state.principal = principal
        if permission is Permission.SELF:
            scopes: tuple[str, ...] = ("self",)
        else:
            scopes = principal.scopes_for(permission)
            if not scopes:
                raise ForbiddenError(
                    f"{principal.login} lacks {permission.value}", code="auth.forbidden"
                )
        client = request.client.host if request.client else None
        return Access(
            principal=principal,
            permission=permission,
            scopes=scopes,
            read_scopes=principal.scopes_for(Permission.ORG_READ),
            request_id=getattr(request.state, "request_id", None),
            source=client,
        )

    setattr(dependency, PERMISSION_ATTR, permission)
    return dependency


def route_permission(route: Any) -> Permission | None:
    """The permission a route's `require()` dependency declares, if any."""
    dependant = getattr(route, "dependant", None)
    stack = list(dependant.dependencies) if dependant else []
    while stack:
        dep = stack.pop()
        perm = getattr(dep.call, PERMISSION_ATTR, None)
        if perm is not None:
            return perm  # type: ignore[no-any-return]
        stack.extend(dep.dependencies)
    return None
