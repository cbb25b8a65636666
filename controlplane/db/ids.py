"""Row ids taken from a PostgreSQL sequence in blocks, so that an INSERT can
be deferred (controlplane.db.pipeline) instead of waiting for its RETURNING.

Filing a quota request needs the new row's id at once (the answer, the audit
entries and the outbox row name it). With `INSERT … RETURNING id` that is a
round trip of its own for every request of a group commit; with an id known
beforehand the INSERT travels with the next statement. `IdBlocks.take` hands
out ids from a block of `size` values fetched with one `nextval` query — the
same trade as a sequence declared with `CACHE size`: ids stay unique and
increase within one process, but the processes' blocks interleave, so across
API processes a higher id is not always a later row, and a block a process
does not use up leaves a gap. Blocks start at one id and double up to `size`
with use, so a process that files one request (the CLI) leaves no gap.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from controlplane.db import pipeline


class IdBlocks:
    def __init__(self, table: str, column: str = "id", size: int = 32) -> None:
        self._sql = (
            "SELECT nextval(pg_get_serial_sequence(%(table)s, %(column)s)) AS id "
            "FROM generate_series(1, %(size)s)"
        )
        self._target = {"table": table, "column": column}
        self._max = size
        self._lock = threading.Lock()
        self._free: weakref.WeakKeyDictionary[Engine, deque[int]] = weakref.WeakKeyDictionary()
        self._next: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()

    def take(self, session: Session) -> int | None:
        """The next id, or None where inserts are not deferred (SQLite): the
        caller then lets the database assign it."""
        if not pipeline.deferrable(session):
            return None
        engine = session.get_bind()
        if not isinstance(engine, Engine):
            return None
        with self._lock:
            free = self._free.setdefault(engine, deque())
            if free:
                return free.popleft()
            size = self._next.get(engine, 1)
            self._next[engine] = min(self._max, size * 2)
        # Sequences are not transactional: the block stays taken even if this
        # transaction rolls back, and no lock is held while it is fetched.
        params = {**self._target, "size": size}
        block: list[int] = [row.id for row in pipeline.fetch(session, self._sql, params)]
        with self._lock:
            # Another thread may have refilled meanwhile: keep the ids in order.
            free = self._free.setdefault(engine, deque())
            merged = sorted([*free, *block])
            free.clear()
            free.extend(merged[1:])
            return merged[0]
