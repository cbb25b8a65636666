"""`yunguan exporter`: serve the DB metrics to Prometheus.

One process per installation is enough (and more would only multiply the
database reads): its series come from the database, never from a provider.
"""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.bootstrap import metrics_exporter
from controlplane.cli.context import container_for
from controlplane.observability.server import make_exporter_server
from controlplane.settings import Mode, get_settings
from controlplane.vocabulary import InvalidInputError


def exporter(
    host: Annotated[str | None, typer.Option(help="default: settings metrics.host")] = None,
    port: Annotated[
        int | None, typer.Option(help="default: settings metrics.port (9464); 0 picks a free one")
    ] = None,
    check_interval: Annotated[
        float | None,
        typer.Option(help="seconds between change checks (default: metrics.check_interval_s)"),
    ] = None,
) -> None:
    """Serve /metrics for Prometheus from the database (never calls a cloud)."""
    settings = get_settings()
    if settings.mode is Mode.PRODUCTION and not settings.database_url:
        raise InvalidInputError(
            "YUNGUAN_DATABASE_URL is not set (only dev mode has a default)", code="config.invalid"
        )
    update: dict[str, object] = {}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    if check_interval is not None:
        update["check_interval_s"] = check_interval
    metrics = settings.metrics.model_copy(update=update)
    container = container_for(settings.model_copy(update={"metrics": metrics}))
    try:
        cache = metrics_exporter(container)
        # Fail now, not at the first scrape, when the database is unreachable or unmigrated.
        series = cache.get().count(b"\n")
        server = make_exporter_server(cache, metrics.host, metrics.port)
        typer.echo(
            f"yunguan exporter: http://{metrics.host}:{server.server_port}/metrics "
            f"({series} lines; database {container.engine.url!r})",
            err=True,
        )
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        container.close()
