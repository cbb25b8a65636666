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

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.identity_tables import AuditEntry, AuditHead

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


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if any(w in str(k).lower() for w in _SECRET_WORDS) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _canonical(entry: AuditEntry) -> bytes:
    body = {
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "roles": entry.roles,
        "scope_path": entry.scope_path,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "before": entry.before,
        "after": entry.after,
        "request_id": entry.request_id,
        "source": entry.source,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


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


def record_many(session: Session, ctx: AuditContext, entries: list[Entry]) -> list[AuditEntry]:
    """Appends entries in order: one head lock and one head update for the batch."""
    if not entries:
        return []
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        raise RuntimeError("audit_head row missing: run `yunguan db upgrade`")
    written = []
    seq, prev = head.last_seq, head.last_hash
    at = utcnow()  # microseconds: both backends store them exactly, so hashes round-trip
    for e in entries:
        seq += 1
        entry = AuditEntry(
            seq=seq,
            at=at,
            actor=ctx.actor,
            roles=ctx.roles,
            scope_path=e.scope_path,
            action=e.action,
            object_type=e.object_type,
            object_id=e.object_id,
            before=redact(e.before) if e.before is not None else None,
            after=redact(e.after) if e.after is not None else None,
            request_id=ctx.request_id,
            source=ctx.source,
            prev_hash=prev,
        )
        entry.hash = entry_hash(entry)
        prev = entry.hash
        session.add(entry)
        written.append(entry)
    head.last_seq, head.last_hash = seq, prev
    session.flush()
    return written


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
