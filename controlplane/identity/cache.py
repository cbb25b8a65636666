"""A short-lived, per-process cache of authenticated principals.

Resolving a token costs several queries (token, user, bindings, scopes) on
every request. For `ttl` seconds after a successful lookup the same bearer is
answered from memory — keyed by a digest, never the token itself. The price,
documented for operators: a revoked or rebound token keeps its old answer for
at most `ttl` seconds in each API process (Keystone's token cache makes the
same trade). The API refreshes a busy client's entry before it ends (`due`),
so it rarely expires under use; the bound stays `ttl`. `ttl = 0` switches it
off.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from datetime import datetime

from controlplane.identity.principal import Principal


class PrincipalCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._lock = threading.Lock()
        # key -> (answer until, credential expiry, principal, refresh from)
        self._entries: dict[str, tuple[float, datetime | None, Principal, float]] = {}

    @staticmethod
    def key(bearer: str) -> str:
        return hashlib.sha256(bearer.encode()).hexdigest()

    def get(self, key: str, now: datetime) -> Principal | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            until, expires_at, principal, _ = hit
            if time.monotonic() > until or (expires_at is not None and expires_at <= now):
                del self._entries[key]
                return None
            return principal

    def due(self, key: str) -> bool:
        """True once an entry is old enough to be refreshed ahead: from a point
        drawn at random between half and seven eighths of its life. Entries
        filled together (every client's after a restart, or after a quiet
        spell) would otherwise come due together, and their lookups would
        arrive as one burst every TTL; drawn, they spread over 3/8 of it. The
        last eighth leaves time for the lookup before the entry ends."""
        with self._lock:
            hit = self._entries.get(key)
        return hit is not None and time.monotonic() > hit[3]

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def put(self, key: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude but bounded; a burst of new tokens only
            now = time.monotonic()
            refresh = now + self.ttl * (0.5 + 0.375 * random.random())  # noqa: S311 - not crypto
            self._entries[key] = (now + self.ttl, expires_at, principal, refresh)
