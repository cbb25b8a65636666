"""Least-connections accept for several worker processes on one listening socket.

Why not the kernel's spreading: with a socket per worker bound with
SO_REUSEPORT, the kernel picks a worker by hashing each connection's
addresses, so a client that opens its connections at once and keeps them (a
load balancer, a department gateway's pool, wrk) gets a random split: of 32
connections, 21/11 and 22/10 were seen on two workers. The worker holding 22
then queues its requests behind each other while the other has CPU to spare,
and the service's tail latency is that worker's. With one shared socket and
asyncio's own accept loop it is worse: whichever worker wakes first accepts
everything waiting (32 of 32 were seen on one worker).

What this does (envoy's "exact" connection balancing and nginx's
accept_mutex solve the same problem): all workers watch one shared listening
socket, and each publishes how many connections it holds in a small shared
array. A worker woken by a waiting connection accepts it only if it holds no
more connections than any other worker; otherwise it stands aside, because
the worker with fewer was woken by the same readiness and takes it. Two
workers tied may both try; one gets the connection and the other EAGAIN. A
worker accepts one connection per wake-up, so a burst alternates between
them and lands evenly.

Liveness: a worker that stands aside looks again after `GRACE`; if a
connection is still waiting then (the worker with fewer is stuck in a long
callback, or stopping), it takes it regardless, so a connection waits at
most about `GRACE` longer than it would have. A stopping worker publishes
an unreachable count, so the others stop deferring to it.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

GRACE = 0.02  # seconds a worker stands aside before taking a waiting connection
STOPPED = 2**62  # the count a stopping worker publishes: never the fewest


class Slots(Protocol):
    """A shared array of connection counts, one slot per worker
    (multiprocessing's RawArray of C longs)."""

    def __getitem__(self, index: int) -> int: ...
    def __setitem__(self, index: int, value: int) -> None: ...
    def __len__(self) -> int: ...


class ConnectionCounts:
    """This worker's slot in the shared counts, and the others' for comparison.
    Each worker writes only its own slot (an aligned machine word), so no lock
    is needed: a reader sees the old count or the new one, and a decision made
    on the old one is at most one connection off."""

    def __init__(self, slots: Slots, index: int) -> None:
        self._slots = slots
        self._index = index
        slots[index] = 0

    def opened(self) -> None:
        self._slots[self._index] += 1

    def closed(self) -> None:
        self._slots[self._index] -= 1

    def stopped(self) -> None:
        self._slots[self._index] = STOPPED

    def fewest(self) -> bool:
        """Whether no other worker holds fewer connections than this one."""
        own = self._slots[self._index]
        return all(own <= self._slots[i] for i in range(len(self._slots)) if i != self._index)


class BalancedAcceptor:
    """Accepts from a shared listening socket on the running event loop, one
    connection per wake-up and only when this worker holds the fewest
    (see the module docstring). `make_protocol(closed)` builds the protocol for
    an accepted connection; the protocol must call `closed()` once when the
    connection is lost."""

    def __init__(
        self,
        sock: socket.socket,
        counts: ConnectionCounts,
        make_protocol: Callable[[Callable[[], None]], asyncio.Protocol],
    ) -> None:
        self._sock = sock
        self._counts = counts
        self._make_protocol = make_protocol
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._watching = False
        self._stopped = False
        self._handshakes: set[asyncio.Task[None]] = set()  # held so they are not collected
        # poll, not select: select() cannot watch a descriptor numbered 1024 or more.
        self._waiting = select.poll()
        self._waiting.register(sock, select.POLLIN)

    def start(self) -> None:
        self._sock.setblocking(False)
        self._watch()

    def stop(self) -> None:
        """Stop accepting; connections already accepted are left to the server."""
        self._stopped = True
        self._unwatch()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._counts.stopped()

    def _watch(self) -> None:
        if not self._watching and not self._stopped:
            self._loop.add_reader(self._sock.fileno(), self._ready)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._sock.fileno())
            self._watching = False

    def _ready(self) -> None:
        if self._counts.fewest():
            self._accept()
            return
        # Another worker holds fewer connections and was woken too: stand
        # aside (not watching, or level-triggered readiness would spin).
        self._unwatch()
        self._timer = self._loop.call_later(GRACE, self._look_again)

    def _look_again(self) -> None:
        self._timer = None
        if self._stopped:
            return
        if self._waiting.poll(0):  # waited a whole GRACE: nobody else is taking it
            self._accept()
        if self._timer is None:  # not paused again by a failed accept
            self._watch()

    def _accept(self) -> None:
        try:
            conn, _addr = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # a tied worker took it, or the client gave up before it was taken
        except OSError as exc:
            # Out of descriptors (EMFILE) or buffers, or worse: retrying at once
            # would spin, and raising would leave the reader to fire again, so
            # the worker pauses accepting for a second, as asyncio's own loop does.
            log.error("cannot accept connections, pausing for a second: %s", exc)
            self._unwatch()
            self._timer = self._loop.call_later(1.0, self._look_again)
            return
        conn.setblocking(False)
        self._counts.opened()
        task = self._loop.create_task(self._connect(conn))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _connect(self, conn: socket.socket) -> None:
        lost = _Once(self._counts.closed)
        try:
            await self._loop.connect_accepted_socket(lambda: self._make_protocol(lost), conn)
        except OSError as exc:  # the peer went away before the transport was made
            log.debug("accepted connection failed: %s", exc)
            conn.close()
            lost()


class _Once:
    """A callback that acts on its first call only (a connection is lost once,
    but the failed-handshake path and the protocol could both report it)."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action

    def __call__(self) -> None:
        action, self._action = self._action, None
        if action is not None:
            action()
