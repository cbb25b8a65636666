"""What the quota routes share: the transaction runner with idempotency and
audit, ETags from generations, and the caller as a quota `Actor`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.auth import Access
from api.deps import get_container
from controlplane.bootstrap import Container
from controlplane.db import idempotency
from controlplane.db.combine import combined
from controlplane.db.pipeline import Write
from controlplane.db.retry import run_in_transaction
from controlplane.identity import audit
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.vocabulary import InvalidInputError
from quotas.model import Actor, Change

T = TypeVar("T")
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
    session: Session,
    access: Access,
    changes: Sequence[Change],
    *,
    then: Sequence[Write] = (),
    commit: bool = False,
) -> None:
    """All of a call's changes under one audit head lock; `then` (and with
    `commit` the COMMIT) go with them."""
    audit.record_many(
        session,
        access.audit,
        [
            audit.Entry(c.action, c.object_type, c.object_id, c.scope_path, c.before, c.after)
            for c in changes
        ],
        then=then,
        commit=commit,
    )


def mutate(
    container: Container,
    request: Request,
    access: Access,
    key: str | None,
    body: Any,
    work: Callable[[SqlQuotaStore, Session], tuple[int, Any, Sequence[Change], int | None]],
) -> JSONResponse:
    """One transaction: claim the Idempotency-Key, run the use case, audit its
    changes, store the answer. A retried POST replays the first answer; a lost
    race is retried server-side (run_in_transaction)."""
    digest = idempotency.request_hash(request.method, request.url.path, body)
    actor = access.principal.login

    def tx(session: Session) -> tuple[int, Any, int | None]:
        if key is not None:
            stored = idempotency.claim(session, actor, key, digest)
            if stored is not None:
                return stored.status_code, stored.response, None
        # The audit head is everybody's lock: taken with the quota rows' locks
        # (after them), and released by a COMMIT sent with the last writes.
        audit.lock_head_next(session)
        status, payload, changes, generation = work(SqlQuotaStore(session), session)
        answer = [idempotency.completion(actor, key, status, payload)] if key is not None else []
        record(session, access, changes, then=answer, commit=not combined(session))
        return status, payload, generation

    # Group commit (controlplane.db.combine): concurrent calls share one transaction.
    combiner = container.combiner
    if combiner is not None:
        status, payload, generation = combiner.run(tx)
    else:
        status, payload, generation = run_in_transaction(container.session_factory, tx)
    headers = {"ETag": etag(generation)} if generation is not None else {}
    return JSONResponse(payload, status_code=status, headers=headers)
