"""How the API is served: uvicorn, with TCP_NODELAY on every connection and,
for several workers, one shared socket accepted from by the least-loaded worker.

TCP_NODELAY: uvicorn with `--workers N` binds the listening socket itself as
`socket.socket(family=…)`, whose recorded protocol is 0, and asyncio only
turns Nagle's algorithm off for sockets that say IPPROTO_TCP. Every response
is then written as two segments (headers, body) and the second waits for the
client's delayed ACK: about 40 ms added to every request of a keep-alive
client (bench/quota_http.py at one connection: 47 ms per request with two
workers, 2.4 ms with one). The protocol below sets TCP_NODELAY itself.

Garbage collection: a worker holds ~165,000 objects once the app and its
lifespan have started (modules, FastAPI's routes and models, SQLAlchemy's
tables and compiled statements), and CPython's full collection walks all of
them: under load every ~9 s, 90–160 ms each, with the event loop and the group
committer stopped, so every request in flight or arriving then waited (the
bench's p99). `FrozenStartupServer` freezes what exists once startup is done
(gc.freeze: the collector leaves those objects alone; refcounting still frees
them), so a full collection walks only what was made since.

Several workers: uvicorn's own multi-worker mode shares one listening socket
and lets asyncio accept on it, and whichever worker wakes first accepts every
connection waiting, so a client that opens its connections at once (a load
balancer, a connection pool) lands on one worker while the others idle (seen:
32 of 32 connections on one of two workers). The workers here share one
socket too, but accept through `api.balance.BalancedAcceptor`: one connection
at a time, by the worker holding the fewest (that module says why not
SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.balance import BalancedAcceptor, ConnectionCounts, Slots
from controlplane.vocabulary import InvalidInputError

# uvloop's event loop and httptools' C parser instead of asyncio's loop and
# h11 (pure Python): per request they halve the serving stack's CPU, which is
# most of what a cheap request costs (bench/quota_http.py). Both are what
# `uvicorn[standard]` installs; they are dependencies of Yunguan.
LOOP = "uvloop"


class NoDelayProtocol(HttpToolsProtocol):
    # Told when the connection is gone (the balanced acceptor's count).
    on_lost: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class FrozenStartupServer(uvicorn.Server):
    """uvicorn's server, with what startup made moved out of the collector's
    reach (see the module docstring)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        gc.collect()  # garbage of the start itself is freed, not frozen
        gc.freeze()


class BalancedServer(FrozenStartupServer):
    """One of several workers: serves what it accepts from the shared
    listening socket through a `BalancedAcceptor` instead of uvicorn's own
    accept loop."""

    def __init__(self, config: uvicorn.Config, listener: socket.socket, counts: ConnectionCounts):
        super().__init__(config)
        self._listener = listener
        self._counts = counts
        self._acceptor: BalancedAcceptor | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app's lifespan; no listener of uvicorn's

        def make_protocol(lost: Callable[[], None]) -> NoDelayProtocol:
            protocol = NoDelayProtocol(
                config=self.config, server_state=self.server_state, app_state=self.lifespan.state
            )
            protocol.on_lost = lost
            return protocol

        self._acceptor = BalancedAcceptor(self._listener, self._counts, make_protocol)
        self._acceptor.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._acceptor is not None:
            self._acceptor.stop()
        await super().shutdown(sockets=sockets)


def _config(app: Any, host: str, port: int, options: dict[str, Any]) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, http=NoDelayProtocol, loop=LOOP, **options)


def run(app: Any, *, host: str, port: int, workers: int = 1, **options: Any) -> None:
    """Serve `app` (an import string when workers > 1) until SIGTERM/SIGINT."""
    if workers <= 1:
        server = FrozenStartupServer(_config(app, host, port, options))
        server.run()
        if not server.started:  # as uvicorn.run: a failed start is a failed run
            sys.exit(3)  # uvicorn.server.STARTUP_FAILURE (not exported)
        return
    if not isinstance(app, str):
        raise ValueError("several workers need the app as an import string")
    try:
        listener = _listen(host, port)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot listen on {host}:{port}: {exc.strerror}", code="serve.cannot_listen"
        ) from None
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.RawArray("q", workers)  # each worker's open connections
    procs = [
        ctx.Process(
            target=_worker,
            args=(app, host, port, options, listener, slots, i),
            name=f"yunguan-api-{i}",
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    listener.close()  # the workers hold their own copies

    def stop(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes in-flight requests

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()
    # A worker that died on its own takes the service down with it: the
    # supervisor (systemd, Kubernetes) restarts the whole, which is visible.
    failed = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        sys.exit(1)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _worker(
    app: str,
    host: str,
    port: int,
    options: dict[str, Any],
    listener: socket.socket,
    slots: Slots,
    index: int,
) -> None:
    counts = ConnectionCounts(slots, index)
    BalancedServer(_config(app, host, port, options), listener, counts).run()
