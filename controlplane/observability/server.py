"""`yunguan exporter`: the DB exposition over HTTP, as a plain WSGI app.

The stdlib WSGI server with a thread per request (prometheus_client's own
`ThreadingWSGIServer`, the one `start_http_server` uses) is all a scrape
every 15–60 s needs, and keeps HTTP frameworks out of `controlplane/`
(import-linter). One process: its series come from the database, so there is
nothing to aggregate across processes.

    GET /metrics   the exposition (gzip when accepted); 503 when the database fails
    GET /healthz   200 "ok"
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client.exposition import ThreadingWSGIServer

from controlplane.observability.cache import MetricsCache, accepts_gzip

log = logging.getLogger("yunguan.exporter")

# The classic text format, which is what `generate_latest` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_app(cache: MetricsCache) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _plain(start_response, "200 OK", b"ok\n")
        if path not in {"/metrics", "/"}:
            return _plain(start_response, "404 Not Found", b"not found: try /metrics\n")
        if method not in {"GET", "HEAD"}:
            return _plain(start_response, "405 Method Not Allowed", b"GET only\n")
        gzipped = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        try:
            body = cache.get(gzipped=gzipped)
        except Exception:
            # A scrape failure (up == 0) is the signal; the details go to the log.
            log.exception("rendering the metrics failed")
            return _plain(start_response, "503 Service Unavailable", b"database unavailable\n")
        headers = [
            ("Content-Type", CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            ("Vary", "Accept-Encoding"),
        ]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [] if method == "HEAD" else [body]

    return app


def _plain(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """One line per scrape would drown the log."""


def make_exporter_server(cache: MetricsCache, host: str, port: int) -> ThreadingWSGIServer:
    """Bound and ready; `serve_forever()` it. Port 0 picks a free port
    (`server.server_address` says which)."""
    server = make_server(
        host, port, metrics_app(cache), ThreadingWSGIServer, handler_class=_QuietHandler
    )
    return server
