"""How the API is served: uvicorn, with TCP_NODELAY on every connection.

uvicorn with `--workers N` binds the listening socket itself as
`socket.socket(family=…)`, whose recorded protocol is 0, and asyncio only
turns Nagle's algorithm off for sockets that say IPPROTO_TCP. Every response
is then written as two segments (headers, body) and the second waits for the
client's delayed ACK: about 40 ms added to every request of a keep-alive
client (bench/quota_http.py at one connection: 47 ms per request with two
workers, 2.4 ms with one). This protocol sets TCP_NODELAY itself.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def run(app: Any, **options: Any) -> None:
    """uvicorn.run with the protocol above (an import string or an app object)."""
    uvicorn.run(app, http=NoDelayH11Protocol, **options)
