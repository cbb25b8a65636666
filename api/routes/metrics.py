"""GET /metrics: the API process's request metrics — and, in `yunguan up`, the DB exporter's.

Production (`yunguan serve`): the request counters of this process, or of all
API processes when `PROMETHEUS_MULTIPROC_DIR` is set (multiprocess mode); the
capacity, quota and ledger series come from the separate `yunguan exporter`.
Embedded (`yunguan up`): the DB exposition first (cached, see
`controlplane.observability.cache`), then the process metrics, compressed
onto a copy of the cached compressor when the client takes gzip.

Unauthenticated, like /healthz: a scraper holds no token. The exposition names
clouds, org units and projects, never a secret; keep the port internal.
"""

from __future__ import annotations

import gzip

from fastapi import APIRouter, Request, Response

from controlplane.observability.cache import MetricsCache, accepts_gzip
from controlplane.observability.process import render_process_metrics
from controlplane.observability.server import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    exporter: MetricsCache | None = getattr(request.app.state, "metrics", None)
    gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))
    own = render_process_metrics()
    if exporter is not None:
        body = exporter.get(gzipped=gzipped, suffix=own)
    else:
        body = gzip.compress(own, compresslevel=6) if gzipped else own
    headers = {"Vary": "Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=CONTENT_TYPE, headers=headers)
