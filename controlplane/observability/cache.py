"""Render once per change, serve cached bytes: the exporter's scrape path.

The exposition only changes when a sync, a grant or a ledger change lands.
A scrape asks for the bytes; at most every `check_interval_s` it runs the
fingerprint (one cheap statement) and re-renders only when that moved, or
when the cached exposition is `max_age_s` old (a safety net for changes the
fingerprint cannot see). Otherwise it gets the cached bytes — and, when the
client accepts gzip (Prometheus always does), the cached gzip of them,
compressed once per render rather than once per scrape (a suffix, e.g. the
API process's own metrics in `yunguan up`, is compressed onto a copy).

Concurrent scrapes share one lock: one of them renders, the others wait for
its result instead of rendering the same thing again.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Hashable

_UNSET = object()


class MetricsCache:
    def __init__(
        self,
        render: Callable[[], bytes],
        fingerprint: Callable[[], Hashable],
        *,
        check_interval_s: float = 5.0,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._render = render
        self._fingerprint = fingerprint
        self._check_interval = check_interval_s
        self._max_age = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._key: Hashable = _UNSET
        self._body: bytes | None = None
        self._gzip: _OpenGzip | None = None
        self._rendered_at = 0.0
        self._checked_at = 0.0
        self.renders = 0
        self.checks = 0

    def get(self, *, gzipped: bool = False, suffix: bytes = b"") -> bytes:
        """The exposition (gzip-encoded when `gzipped`), with `suffix` appended — another
        process's metrics, say — in one gzip member; raises what the database raises."""
        with self._lock:
            body = self._fresh()
            if not gzipped:
                return body + suffix if suffix else body
            if self._gzip is None:
                self._gzip = _OpenGzip(body)
            return self._gzip.finish(suffix)

    def invalidate(self) -> None:
        """The next `get` renders, whatever the fingerprint says."""
        with self._lock:
            self._key = _UNSET
            self._checked_at = float("-inf")

    def _fresh(self) -> bytes:
        now = self._clock()
        if self._body is not None and now - self._checked_at < self._check_interval:
            return self._body
        key = self._fingerprint()
        self.checks += 1
        self._checked_at = now
        if self._body is None or key != self._key or now - self._rendered_at >= self._max_age:
            # The fingerprint is taken before the render: a change that lands
            # in between is rendered now and seen again by the next check.
            self._body = self._render()
            self._gzip = None
            self._key = key
            self._rendered_at = now
            self.renders += 1
        return self._body


class _OpenGzip:
    """A gzip member of the exposition, compressed once and left open: `finish`
    appends a suffix to a copy of the compressor and closes that copy, so the
    result is one ordinary gzip member (some clients, httpx among them, read
    only the first of several) at the cost of compressing the suffix alone."""

    def __init__(self, body: bytes) -> None:
        # wbits 31: a gzip header and trailer (CRC-32, size); level 6 is ~5x
        # smaller than the text for this output at a fraction of the render's cost.
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        self._head = self._compressor.compress(body) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        self._closed = self._head + self._compressor.copy().flush()

    def finish(self, suffix: bytes) -> bytes:
        if not suffix:
            return self._closed
        c = self._compressor.copy()
        return self._head + c.compress(suffix) + c.flush()


def accepts_gzip(accept_encoding: str) -> bool:
    """True when an Accept-Encoding header allows gzip (and does not refuse it with q=0)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in {"gzip", "x-gzip"}:
            q = params.strip().lower().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return True
    return False
