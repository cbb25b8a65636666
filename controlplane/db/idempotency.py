"""Idempotency keys: a retried POST with the same `Idempotency-Key` never applies twice.

The route claims the key *first*, in the same transaction as the change::

    stored = claim(session, actor, key, request_hash(body))
    if stored is not None:
        return replay(stored)              # the first call's status and body
    result = ...the use case...
    complete(session, actor, key, 201, body)
    commit

Claiming is an INSERT … ON CONFLICT DO NOTHING on (actor, key): a concurrent
duplicate blocks on the uncommitted first claim (PostgreSQL) or on the write
lock (SQLite) and then finds the completed row. If the first call failed and
rolled back, its claim vanished with it and the retry runs normally. Reusing a
key for a different body is a ConflictError (`idempotency.key_reused`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg.types.json import Json
from sqlalchemy import (
    JSON,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from controlplane.db.base import Base, UtcDateTime, utcnow
from controlplane.db.combine import Rerun, combined
from controlplane.db.pipeline import Write, defer, deferrable, execute_writes, fetch
from controlplane.vocabulary import ConflictError, InvalidInputError

MAX_KEY = 200


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor", "key", name="uq_idempotency_keys_actor_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(MAX_KEY))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    response: Any


# Built once: json.dumps with options builds an encoder per call (every POST).
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def request_hash(method: str, path: str, body: Any) -> str:
    """A stable digest of what was asked (canonical JSON), to detect key reuse."""
    canonical = _CANONICAL_JSON([method.upper(), path, body])
    return hashlib.sha256(canonical.encode()).hexdigest()


_TABLE = cast(Table, IdempotencyKey.__table__)
# Built once per dialect: every POST runs these (bench/quota_http.py).
_CLAIM = sqlite.insert(_TABLE).on_conflict_do_nothing().returning(_TABLE.c.id)
_PG_CLAIM = (  # the same for psycopg: claim() sends it through controlplane.db.pipeline
    "INSERT INTO idempotency_keys (actor, key, request_hash, created_at) "
    "VALUES (%(actor)s, %(key)s, %(request_hash)s, %(created_at)s) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_PG_CLAIM_NEW = (
    "INSERT INTO idempotency_keys (actor, key, request_hash, created_at) "
    "VALUES (%(actor)s, %(key)s, %(request_hash)s, %(created_at)s)"
)
_STORED = select(_TABLE.c.request_hash, _TABLE.c.status_code, _TABLE.c.response).where(
    _TABLE.c.actor == bindparam("b_actor"), _TABLE.c.key == bindparam("b_key")
)
_COMPLETE = (
    update(_TABLE)
    .where(_TABLE.c.actor == bindparam("b_actor"), _TABLE.c.key == bindparam("b_key"))
    .values(status_code=bindparam("b_status"), response=bindparam("b_response", type_=JSON))
)


def claim(session: Session, actor: str, key: str, digest: str) -> StoredResponse | None:
    """Claim `key` for this call; None means go ahead, else replay the stored answer."""
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidInputError(
            f"Idempotency-Key must be 1 to {MAX_KEY} printable characters",
            code="idempotency.invalid_key",
        )
    conn = session.connection()
    values = {"actor": actor, "key": key, "request_hash": digest, "created_at": utcnow()}
    if combined(session) and deferrable(session):
        # In a group commit, a fresh key (nearly every one) needs no answer
        # from the database: the claim goes with the next statement. A key
        # already taken then fails that statement with a unique violation,
        # and the combiner re-runs the batch one call per transaction, where
        # the claim below finds the stored answer (controlplane.db.combine).
        defer(session, Write(None, values, _PG_CLAIM_NEW, [values]))
        return None
    if conn.dialect.name == "postgresql":
        # Usually the transaction's first statement: with BEGIN in one round trip.
        claimed = bool(fetch(session, _PG_CLAIM, values))
    else:
        claimed = conn.execute(_CLAIM, values).first() is not None
    if claimed:
        return None
    row = conn.execute(_STORED, {"b_actor": actor, "b_key": key}).one()
    if row.request_hash != digest:
        raise ConflictError(
            "this Idempotency-Key was used for a different request",
            code="idempotency.key_reused",
        )
    if row.status_code is None:
        if combined(session):
            # Claimed by an earlier call of this same group commit (SQLite:
            # PostgreSQL's deferred claim fails instead): run the calls one by
            # one, and this one then replays that call's answer.
            raise Rerun(f"Idempotency-Key {key!r} claimed earlier in the batch")
        # Only reachable if the first call is still running on SQLite without
        # the write lock, which BEGIN IMMEDIATE rules out; say so plainly.
        raise ConflictError(
            "a request with this Idempotency-Key is still in progress",
            code="idempotency.in_progress",
        )
    return StoredResponse(row.status_code, row.response)


_PG_COMPLETE = (
    "UPDATE idempotency_keys SET status_code = %s, response = %s WHERE actor = %s AND key = %s"
)


def completion(actor: str, key: str, status_code: int, response: Any) -> Write:
    """Storing the answer of the call that claimed `key`, as a write to send
    with the audit entries (same transaction)."""
    return Write(
        _COMPLETE,
        {"b_actor": actor, "b_key": key, "b_status": status_code, "b_response": response},
        _PG_COMPLETE,
        [(status_code, Json(response), actor, key)],
    )


def complete(session: Session, actor: str, key: str, status_code: int, response: Any) -> None:
    """Store the answer of the call that claimed `key` (same transaction)."""
    execute_writes(session, [completion(actor, key, status_code, response)])


def purge(session: Session, older_than: datetime) -> int:
    """Forget keys older than the retention window (a periodic job)."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
