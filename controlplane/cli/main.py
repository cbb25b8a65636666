"""`yunguan`: the all-in-one `up`, `serve`, `db` and `topology` commands.

Commands are thin: they build the container (the composition root), call one
use case, and print. Errors become one line via `cli.errors.run_cli`.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli import (
    db_commands,
    exporter_command,
    identity_commands,
    ledger_commands,
    quota_commands,
    topology_commands,
    worker_commands,
)
from controlplane.cli.context import State, container_for
from controlplane.cli.errors import run_cli
from controlplane.settings import Mode, get_settings

app = typer.Typer(
    name="yunguan",
    help="Yunguan (云管): control plane of Hunan's 1+1+N+14 government hybrid cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(topology_commands.app, name="topology")
app.add_typer(identity_commands.users, name="user")
app.add_typer(identity_commands.tokens, name="token")
app.add_typer(identity_commands.audit_app, name="audit")
app.add_typer(ledger_commands.app, name="ledger")
quota_commands.register(app)  # capacity, quota, request
app.add_typer(worker_commands.ops_app, name="ops")
app.add_typer(worker_commands.tenant_app, name="tenant")
app.command()(worker_commands.worker)
app.command()(worker_commands.beat)
app.command()(worker_commands.sync)
app.command()(exporter_command.exporter)


@app.callback()
def _main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    ctx.obj = State(debug=debug)


def sample_topology() -> Path:
    return Path(str(resources.files("controlplane.topology") / "examples" / "hunan.yaml"))


@app.command()
def up(
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port")] = 8080,
    topology: Annotated[
        Path | None, typer.Option(help="applied when the database is empty (default: sample)")
    ] = None,
) -> None:
    """Embedded all-in-one: migrate the SQLite DB, load the sample topology, serve the API
    (with the DB metrics and the process metrics on /metrics)."""
    from api import server
    from api.app import create_app
    from controlplane.bootstrap import embedded_worker, metrics_exporter
    from controlplane.db.migrate import upgrade
    from controlplane.db.uow import UnitOfWork
    from controlplane.identity.bootstrap import dev_admin_token
    from controlplane.topology.apply import apply_topology
    from controlplane.topology.document import load_document
    from controlplane.topology.store import TopologyStore

    settings = get_settings(mode=Mode.DEV)
    container = container_for(settings)
    upgrade(container.engine)
    with UnitOfWork(container.session_factory) as uow:
        empty = TopologyStore(uow.session).is_empty()
    if empty:
        path = topology or settings.topology_file or sample_topology()
        result = apply_topology(container.session_factory, load_document(path), source=str(path))
        typer.echo(f"loaded topology {path}: {len(result.changes)} objects", err=True)
    with UnitOfWork(container.session_factory) as uow:
        issued = dev_admin_token(uow.session, settings.effective_secret_key)
        uow.commit()
    token_file = settings.data_dir / "dev-admin.token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600)
    token_file.write_text(issued.plaintext + "\n", encoding="utf-8")
    typer.echo(
        f"yunguan up: http://{host}:{port}  database {container.engine.url!r}  (dev mode)\n"
        f"dev admin token (also in {token_file}):\n  {issued.plaintext}\n"
        f"try:\n  curl -s -H 'Authorization: Bearer {issued.plaintext}' "
        f"http://{host}:{port}/v1/clouds",
        err=True,
    )
    worker = embedded_worker(container)
    worker.start()
    try:
        app = create_app(container, metrics=metrics_exporter(container))  # GET /metrics
        server.run(app, host=host, port=port, log_level="info")
    finally:
        worker.stop(timeout=10)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: settings api.host")] = None,
    port: Annotated[int | None, typer.Option(help="default: settings api.port")] = None,
    workers: Annotated[int | None, typer.Option(help="default: settings api.workers")] = None,
) -> None:
    """Serve the API (production: PostgreSQL, a real secret, migrations already applied)."""
    from api import server
    from controlplane.observability.process import clear_multiprocess_dir

    settings = get_settings()
    settings.check_production_ready()
    clear_multiprocess_dir()  # with PROMETHEUS_MULTIPROC_DIR: every run starts from zero
    server.run(
        "api.app:create_app",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers or settings.api.workers,
        forwarded_allow_ips=settings.api.forwarded_allow_ips,
        log_level=settings.log.level.lower(),
    )


def run() -> None:
    sys.exit(run_cli(app))
