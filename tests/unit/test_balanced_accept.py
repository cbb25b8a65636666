"""api/balance.py: workers sharing one listening socket take its connections
one at a time, by whoever holds the fewest, so a burst lands evenly; a
worker that stands aside still takes a connection nobody else takes; a
stopping worker is no longer deferred to; and running out of descriptors
pauses accepting instead of spinning. Two acceptors on one event loop stand
for two workers: each watches its own descriptor of the same socket, as each
worker process does."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Callable, Iterator

import pytest

from api.balance import GRACE, STOPPED, BalancedAcceptor, ConnectionCounts


class _Held(asyncio.Protocol):
    """A server-side connection that reports when it is lost, as the API's
    protocol does."""

    def __init__(self, owner: list[_Held], lost: Callable[[], None]) -> None:
        self._owner = owner
        self._lost = lost
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._owner.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.remove(self)
        self._lost()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock
    sock.close()


def _acceptor(
    sock: socket.socket, slots: list[int], index: int
) -> tuple[BalancedAcceptor, list[_Held]]:
    """A started acceptor (it accepts once the test awaits) and what it holds."""
    held: list[_Held] = []
    # Its own descriptor of the shared socket, as a worker process has.
    acceptor = BalancedAcceptor(
        sock.dup(), ConnectionCounts(slots, index), lambda lost: _Held(held, lost)
    )
    acceptor.start()
    return acceptor, held


def _connect(sock: socket.socket, n: int) -> list[socket.socket]:
    return [socket.create_connection(sock.getsockname()) for _ in range(n)]


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "gave up waiting"
        await asyncio.sleep(0.005)


def test_a_burst_of_connections_is_split_evenly(listener: socket.socket) -> None:
    async def main() -> None:
        slots = [0, 0]
        (a, held_a), (b, held_b) = (_acceptor(listener, slots, i) for i in range(2))
        clients = _connect(listener, 32)  # all waiting before either worker runs
        await _until(lambda: len(held_a) + len(held_b) == 32)
        assert sorted([len(held_a), len(held_b)]) == [16, 16]
        assert slots == [16, 16]

        # Eight of A's connections close: the next eight all go to A.
        peers_a = {h.transport.get_extra_info("peername") for h in held_a if h.transport}
        of_a = [c for c in clients if c.getsockname() in peers_a][:8]
        for c in of_a:
            c.close()
        await _until(lambda: slots == [8, 16] or slots == [16, 8])
        more = _connect(listener, 8)
        await _until(lambda: len(held_a) + len(held_b) == 32)
        assert (len(held_a), len(held_b)) == (16, 16)
        a.stop()
        b.stop()
        for c in clients + more:
            c.close()

    asyncio.run(main())


def test_a_worker_standing_aside_takes_what_nobody_else_takes(listener: socket.socket) -> None:
    """The other worker's slot says it holds none, but it never accepts (stuck
    in a long callback): each connection waits about GRACE, not forever."""

    async def main() -> None:
        slots = [0, 0]
        a, held = _acceptor(listener, slots, 0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        clients = _connect(listener, 4)
        await _until(lambda: len(held) == 4)
        # The first was a tie, the other three each waited out one GRACE.
        assert loop.time() - started >= 3 * GRACE
        assert slots == [4, 0]
        a.stop()
        for c in clients:
            c.close()

    asyncio.run(main())


def test_a_stopped_worker_is_not_deferred_to(listener: socket.socket) -> None:
    async def main() -> None:
        slots = [0, 0]
        (a, held_a), (b, held_b) = (_acceptor(listener, slots, i) for i in range(2))
        b.stop()
        assert slots[1] == STOPPED
        clients = _connect(listener, 6)
        await _until(lambda: len(held_a) == 6)
        assert held_b == []
        a.stop()
        for c in clients:
            c.close()

    asyncio.run(main())


def test_out_of_descriptors_pauses_accepting_then_resumes(
    listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    """A real EMFILE: the soft descriptor limit lowered to what is open, for
    longer than one pause. Each failure pauses accepting for a second; none
    spins (one error logged per attempt, not one per loop iteration)."""

    async def main() -> None:
        slots = [0]
        a, held = _acceptor(listener, slots, 0)
        client = socket.create_connection(listener.getsockname())
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        probe = socket.socket()
        lowest_free = probe.fileno()
        probe.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            await asyncio.sleep(1.3)  # the first attempt, and the one a second later
            assert held == []
            assert slots == [0]
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await _until(lambda: len(held) == 1)  # after the next pause
        assert slots == [1]
        a.stop()
        client.close()

    with caplog.at_level(logging.ERROR, logger="api.balance"):
        asyncio.run(main())
    failures = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(failures) == 2, [r.getMessage() for r in failures]
