"""api/server.py: what a worker made while starting is frozen out of the cyclic
collector once startup is done, so a full collection under load walks only
what was made since (the p99 of bench/quota_http.py), and startup's own
garbage is collected first, not frozen."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from typing import Any

import uvicorn

from api.server import FrozenStartupServer


class _Cycle:
    def __init__(self) -> None:
        self.me = self


_made: dict[str, Any] = {}


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _made["garbage"] = weakref.ref(_Cycle())  # only the collector frees a cycle
                _made["kept"] = _Cycle()  # lives as long as the worker: frozen
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def test_startup_freezes_what_it_made_after_collecting_its_garbage() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = FrozenStartupServer(uvicorn.Config(_app, lifespan="on", log_level="warning"))
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    gc.unfreeze()
    try:

        async def start_and_stop() -> None:
            await server.startup(sockets=[sock])
            assert server.started
            frozen = gc.get_freeze_count()
            assert frozen > 0
            assert _made["garbage"]() is None, "startup's garbage was frozen, not collected"
            tracked = gc.get_objects()  # the collector's generations, not the frozen
            assert not any(o is _made["kept"] for o in tracked)
            after = _Cycle()  # made once started: the collector's to walk
            assert any(o is after for o in gc.get_objects())
            assert gc.get_freeze_count() == frozen
            await server.shutdown(sockets=[sock])

        asyncio.run(start_and_stop())
    finally:
        gc.unfreeze()  # the rest of the test run keeps its collector as it was
        sock.close()
