"""The tamper-evident audit log.

`record()` appends one entry inside the caller's transaction: it locks the
single `audit_head` row, takes the next gapless `seq` and chains the entry to
the previous hash. Taking that lock last (callers audit just before commit)
keeps the serialised section to the commit itself. `verify()` recomputes the
chain and names the first entry that does not match (edited, deleted or
reordered). Values under secret-looking keys are redacted before hashing, so
no secret ever reaches the table.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from psycopg.types.json import Json
from sqlalchemy import Select, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.identity_tables import AuditEntry, AuditHead
from controlplane.db.pipeline import (
    LOCKS,
    Write,
    carried,
    carry_read,
    defer,
    fetch,
    recall,
    remember,
)

__all__ = ["AuditContext", "AuditEntry", "record", "verify"]
from controlplane.db.scoping import within_clause
from controlplane.identity.principal import Principal

GENESIS = "0" * 64
_SECRET_WORDS = ("secret", "password", "token", "private", "credential", "digest", "key")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class AuditContext:
    """Where a mutating call came from; built by the API or the CLI."""

    principal: Principal | None
    request_id: str | None = None
    source: str | None = None

    @property
    def actor(self) -> str:
        return self.principal.login if self.principal else "system"

    @property
    def roles(self) -> str:
        return self.principal.roles_text() if self.principal else ""


@functools.lru_cache(maxsize=4096)
def _secret_key(key: object) -> bool:
    # Cached: entries repeat the same few dozen keys, and this ran for every
    # key of every before/after dict of every mutating request.
    lowered = str(key).lower()
    return any(w in lowered for w in _SECRET_WORDS)


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if _secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


_HASHED = (
    "seq", "at", "actor", "roles", "scope_path", "action", "object_type", "object_id",
    "before", "after", "request_id", "source", "prev_hash",
)  # fmt: skip
_SORTED_HASHED = tuple(sorted(_HASHED))

# One encoder, built once: json.dumps with options builds a new one per call,
# which for the dozen small fields of an entry cost more than encoding them.
_CANONICAL_JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode
_JSON_FIELDS = ("before", "after")


def _canonical(fields: Mapping[str, Any], dumped: Mapping[str, str] | None = None) -> bytes:
    """The bytes an entry's hash covers: its fields as JSON with sorted keys and
    no spaces. Written out key by key — the same bytes as `_CANONICAL_JSON` of
    the whole — so that `before`/`after`, already serialised for the database
    (`dumped`), are not serialised a second time."""
    parts = []
    for name in _SORTED_HASHED:
        if name == "at":
            text = '"' + fields["at"].isoformat(timespec="microseconds") + '"'
        elif name in _JSON_FIELDS:
            value = fields[name]
            text = "null" if value is None else (dumped or {}).get(name) or _CANONICAL_JSON(value)
        else:
            text = _CANONICAL_JSON(fields[name])
        parts.append(f'"{name}":{text}')
    return ("{" + ",".join(parts) + "}").encode()


def entry_hash(entry: AuditEntry) -> str:
    return _hash({name: getattr(entry, name) for name in _HASHED})


def _hash(fields: Mapping[str, Any], dumped: Mapping[str, str] | None = None) -> str:
    return hashlib.sha256(_canonical(fields, dumped)).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One audit entry to write; `record_many` chains a batch under one lock."""

    action: str
    object_type: str
    object_id: str
    scope_path: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def record(
    session: Session,
    ctx: AuditContext,
    action: str,
    object_type: str,
    object_id: str,
    *,
    scope_path: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    return record_many(
        session, ctx, [Entry(action, object_type, object_id, scope_path, before, after)]
    )[0]


_T = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditHead.__table__)
# Built once: this runs in every mutating request, last before the commit,
# while the head row is locked (constructing statements per call cost more
# than executing them).
_LOCK_HEAD = select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT = insert(_T)
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(last_seq=bindparam("b_seq"), last_hash=bindparam("b_hash"))
)
_COLUMNS = tuple(c.name for c in _T.columns)


@functools.cache
def _pg_insert(n: int) -> str:
    """n entries in one statement: one execution instead of n in the pipeline."""
    row = f"({', '.join(['%s'] * len(_COLUMNS))})"
    return (
        f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) "  # noqa: S608 - fixed column names
        f"VALUES {', '.join([row] * n)}"
    )
_HEAD_KEY = "audit_head"
_PG_LOCK_HEAD = "SELECT last_seq, last_hash FROM audit_head WHERE id = 1 FOR UPDATE"
_PG_MOVE_HEAD = "UPDATE audit_head SET last_seq = %s, last_hash = %s WHERE id = 1"


def lock_head_next(session: Session) -> None:
    """For a transaction that will take other row locks and then audit: lock the
    head right after them, in their round trip (PostgreSQL; see
    controlplane.db.pipeline.carry_read). The global order — the head last —
    is kept; the head is not held any longer than its own lock would be."""
    carry_read(session, _HEAD_KEY, _PG_LOCK_HEAD, None, group=LOCKS)


def record_many(
    session: Session,
    ctx: AuditContext,
    entries: list[Entry],
    *,
    then: Sequence[Write] = (),
    returning: bool = True,
) -> list[AuditEntry]:
    """Appends entries in order: one head lock, then the entries, the head
    update and the caller's `then` writes, deferred (controlplane.db.pipeline):
    on PostgreSQL they go with the transaction's next statement, at the latest
    with its COMMIT (UnitOfWork.commit); SQLite writes them at once.
    Returns the entries written (not attached to the session; none when not
    `returning`)."""
    if not entries:
        _defer_all(session, then)
        return []
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        head = _pg_head(session)
    else:
        head = conn.execute(_LOCK_HEAD).first()
    if head is None:
        raise RuntimeError("audit_head row missing: run `yunguan db upgrade`")
    # Plain dicts, not AuditEntry objects: ORM instrumentation cost more than
    # the hashing, and this runs while the audit head is locked.
    rows: list[dict[str, Any]] = []
    pg_rows: list[list[Any]] = []
    seq, prev = head.last_seq, head.last_hash
    at = utcnow()  # microseconds: both backends store them exactly, so hashes round-trip
    for e in entries:
        seq += 1
        row = {
            "seq": seq,
            "at": at,
            "actor": ctx.actor,
            "roles": ctx.roles,
            "scope_path": e.scope_path,
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "before": redact(e.before) if e.before is not None else None,
            "after": redact(e.after) if e.after is not None else None,
            "request_id": ctx.request_id,
            "source": ctx.source,
            "prev_hash": prev,
        }
        # before/after serialised once: for the hash and for the database.
        dumped = {k: _CANONICAL_JSON(row[k]) for k in _JSON_FIELDS if row[k] is not None}
        row["hash"] = prev = _hash(row, dumped)
        rows.append(row)
        pg_rows.append(
            [
                Json(row[c], dumps=functools.partial(_given, dumped[c]))
                if c in dumped
                else row[c]
                for c in _COLUMNS
            ]
        )
    writes = [
        Write(_INSERT, rows, _pg_insert(len(rows)), [[v for r in pg_rows for v in r]]),
        # Only the head's last position matters: a later move in the same
        # queue replaces this one (controlplane.db.pipeline.Write.latest_wins).
        Write(
            _MOVE_HEAD,
            {"b_seq": seq, "b_hash": prev},
            _PG_MOVE_HEAD,
            [(seq, prev)],
            latest_wins=_HEAD_KEY,
        ),
        *then,
    ]
    _defer_all(session, writes)
    # This transaction holds the head locked until it ends: its later entries
    # (the other calls of a group commit) need not read it again.
    remember(session, _HEAD_KEY, _Head(seq, prev))
    return [AuditEntry(**row) for row in rows] if returning else []


def _given(text: str, _value: Any) -> str:
    return text


class _Head(NamedTuple):
    last_seq: int
    last_hash: str


def _pg_head(session: Session) -> Any:
    # Locked already with the quota rows (lock_head_next), or known from this
    # transaction's previous entries, or locked now with the writes deferred
    # so far: in no case a round trip of its own.
    found = carried(session, _HEAD_KEY)
    if found is None:
        known = recall(session, _HEAD_KEY)
        if known is not None:
            return known
        found = fetch(session, _PG_LOCK_HEAD, None)
    return found[0] if found else None


def _defer_all(session: Session, writes: Sequence[Write]) -> None:
    for write in writes:
        defer(session, write)


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _walk(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(session: Session) -> VerifyResult:
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for entry in _walk(session):
        if entry.seq != expected_seq:
            return VerifyResult(count, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev_hash:
            return VerifyResult(count, entry.seq, "previous-hash link does not match")
        if entry_hash(entry) != entry.hash:
            return VerifyResult(count, entry.seq, "content does not match its hash")
        prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1))
    if head is not None and (head.last_seq != count or head.last_hash != prev_hash):
        return VerifyResult(count, count + 1, f"head says {head.last_seq} entries, found {count}")
    return VerifyResult(count)


def query(
    scopes: tuple[str, ...] | None,
    *,
    action: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> Select[AuditEntry]:
    q = select(AuditEntry).where(AuditEntry.seq > after_seq).order_by(AuditEntry.seq)
    if scopes is not None:
        q = q.where(within_clause(AuditEntry.scope_path, scopes))
    for column, value in (
        (AuditEntry.action, action),
        (AuditEntry.actor, actor),
        (AuditEntry.object_type, object_type),
    ):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if until is not None:
        q = q.where(AuditEntry.at < until)
    return q.limit(limit)


def entries(session: Session, q: Select[AuditEntry]) -> Sequence[AuditEntry]:
    return session.scalars(q).all()
