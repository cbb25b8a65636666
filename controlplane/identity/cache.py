"""A short-lived, per-process cache of authenticated principals.

Resolving a token costs several queries (token, user, bindings, scopes) on
every request. For `ttl` seconds after a successful lookup the same bearer is
answered from memory — keyed by a digest, never the token itself. The price,
documented for operators: a revoked or rebound token keeps its old answer for
at most `ttl` seconds in each API process (Keystone's token cache makes the
same trade). The API refreshes a busy client's entry in the last quarter of
its life (`due`), so it rarely expires under use; the bound stays `ttl`. `ttl = 0`
switches it off.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime

from controlplane.identity.principal import Principal


class PrincipalCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, datetime | None, Principal]] = {}

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
            until, expires_at, principal = hit
            if time.monotonic() > until or (expires_at is not None and expires_at <= now):
                del self._entries[key]
                return None
            return principal

    def due(self, key: str) -> bool:
        """True in the last quarter of an entry's life: time to refresh it ahead
        (late, so a busy token costs one lookup per ~3/4 TTL, not per TTL/2)."""
        with self._lock:
            hit = self._entries.get(key)
        return hit is not None and time.monotonic() > hit[0] - self.ttl / 4

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def put(self, key: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude but bounded; a burst of new tokens only
            self._entries[key] = (time.monotonic() + self.ttl, expires_at, principal)
