"""What the quota routes share: the transaction runner with idempotency and
audit, ETags from generations, and the caller as a quota `Actor`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from anyio import to_thread
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.auth import Access
from api.deps import get_container
from controlplane.bootstrap import Container
from controlplane.db import idempotency
from controlplane.db.combine import Done
from controlplane.db.pipeline import Write
from controlplane.db.retry import run_in_transaction
from controlplane.identity import audit
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.vocabulary import InvalidInputError
from quotas.model import Actor, Change

P = TypeVar("P")
Cont = Annotated[Container, Depends(get_container)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
IfMatch = Annotated[str | None, Header(alias="If-Match")]


def actor_of(access: Access) -> Actor:
    return Actor(access.principal.login, access.scopes)


def etag(generation: int) -> str:
    return f'"{generation}"'


def expected_generation(if_match: str | None) -> int | None:
    """`If-Match: "7"` (or W/"7") → 7; absent → no precondition."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidInputError(
            f'If-Match must be a generation such as "3", got {if_match!r}',
            code="request.invalid_if_match",
        )
    return int(value)


def record(
    session: Session, access: Access, changes: Sequence[Change], *, then: Sequence[Write] = ()
) -> None:
    """All of a call's changes under one audit head lock; `then` goes with them
    (all deferred: on PostgreSQL they travel with the COMMIT)."""
    entries = [
        audit.Entry(c.action, c.object_type, c.object_id, c.scope_path, c.before, c.after)
        for c in changes
    ]
    audit.record_many(session, access.audit, entries, then=then, returning=False)


Outcome = tuple[int, Any, Sequence[Change], int | None]  # status, body, changes, ETag generation
Answer = tuple[int, Any, int | None]


async def mutate(
    container: Container,
    request: Request,
    access: Access,
    key: str | None,
    body: Any,
    work: Callable[[SqlQuotaStore, Session], Outcome],
) -> JSONResponse:
    """One transaction: claim the Idempotency-Key, run the use case, audit its
    changes, store the answer. A retried POST replays the first answer; a lost
    race is retried server-side (run_in_transaction)."""

    def one_step(store: SqlQuotaStore, session: Session, _prepared: None) -> Outcome:
        return work(store, session)

    return await mutate_staged(container, request, access, key, body, None, one_step)


async def mutate_staged(
    container: Container,
    request: Request,
    access: Access,
    key: str | None,
    body: Any,
    prepare: Callable[[SqlQuotaStore, Session], P] | None,
    work: Callable[[SqlQuotaStore, Session, P], Outcome],
    *,
    hint: Callable[[SqlQuotaStore], None] | None = None,
) -> JSONResponse:
    """`mutate` for a use case in two steps: `prepare` (with the Idempotency-Key
    claim) takes no shared lock, `work` does. Under group commit every call's
    first step runs before any call's second (controlplane.db.combine), so a
    batch holds the grant locks only for the second steps. `hint` announces
    what `prepare` will read (see Combiner.submit_staged)."""
    # The path from the ASGI scope: request.url would build a URL object.
    digest = idempotency.request_hash(request.method, request.scope["path"], body)
    actor = access.principal.login

    def first(session: Session) -> Done[Answer] | tuple[SqlQuotaStore, P]:
        if key is not None:
            stored = idempotency.claim(session, actor, key, digest)
            if stored is not None:
                return Done((stored.status_code, stored.response, None))
        # The audit head is everybody's lock: taken with the quota rows' locks
        # (after them), and released by a COMMIT sent with the last writes.
        audit.lock_head_next(session)
        store = SqlQuotaStore(session)
        return store, (prepare(store, session) if prepare is not None else None)  # type: ignore[return-value]

    def second(session: Session, state: tuple[SqlQuotaStore, P]) -> Answer:
        store, prepared = state
        status, payload, changes, generation = work(store, session, prepared)
        answer = [idempotency.completion(actor, key, status, payload)] if key is not None else []
        record(session, access, changes, then=answer)
        return status, payload, generation

    def whole(session: Session) -> Answer:
        state = first(session)
        return state.value if isinstance(state, Done) else second(session, state)

    # Group commit (controlplane.db.combine): concurrent calls share one
    # transaction. The route awaits it on the event loop: the database work
    # runs in the combiner's thread, and no thread is held per request.
    combiner = container.combiner
    if combiner is None:
        answer = await to_thread.run_sync(run_in_transaction, container.session_factory, whole)
    elif prepare is None:
        answer = await combiner.submit(whole)
    else:
        answer = await combiner.submit_staged(
            first, second, hint=None if hint is None else _on_store(hint)
        )
    status, payload, generation = answer
    headers = {"ETag": etag(generation)} if generation is not None else {}
    return JSONResponse(payload, status_code=status, headers=headers)


def _on_store(hint: Callable[[SqlQuotaStore], None]) -> Callable[[Session], None]:
    def announce(session: Session) -> None:
        hint(SqlQuotaStore(session))

    return announce
