"""`yunguan worker`, `yunguan beat`, `yunguan sync`, `yunguan ops …`, `yunguan tenant retire`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from controlplane.bootstrap import celery_app, worker_context
from controlplane.cli.context import container_for
from controlplane.db.outbox import add_outbox
from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import Operation
from controlplane.settings import get_settings
from controlplane.vocabulary import InvalidInputError, NotFoundError
from controlplane.worker import operations as ops
from controlplane.worker.celery_app import QUEUES, CeleryDispatcher
from controlplane.worker.context import queue_for
from controlplane.worker.provisioning import TASK_RUN_OPERATION
from controlplane.worker.sync import sync_cloud

ops_app = typer.Typer(help="Provisioning operations.", no_args_is_help=True)
tenant_app = typer.Typer(help="Cloud tenants of projects.", no_args_is_help=True)


def worker(
    queues: Annotated[str, typer.Option("-Q", "--queues", help="comma-separated")] = ",".join(
        QUEUES
    ),
    concurrency: Annotated[int, typer.Option("-c", "--concurrency")] = 2,
    loglevel: Annotated[str, typer.Option()] = "INFO",
    metrics_port: Annotated[
        int | None,
        typer.Option(help="serve task metrics here (needs PROMETHEUS_MULTIPROC_DIR)"),
    ] = None,
) -> None:
    """Run a Celery worker (needs YUNGUAN_BROKER_URL)."""
    app = celery_app(container_for())
    unknown = set(queues.split(",")) - set(QUEUES)
    if unknown:
        raise InvalidInputError(
            f"unknown queues: {', '.join(sorted(unknown))}", code="worker.invalid_queue"
        )
    if metrics_port is not None:
        from controlplane.observability.process import serve_process_metrics

        serve_process_metrics(get_settings().metrics.host, metrics_port)
    app.worker_main(
        [
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            f"--loglevel={loglevel}",
            "-n",
            "yunguan@%h",
        ]
    )


def beat(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the single Celery beat: relay, syncs, reservation expiry."""
    app = celery_app(container_for())
    app.start(["beat", f"--loglevel={loglevel}"])


def sync(cloud: str) -> None:
    """Run one full sync of CLOUD now, in this process (health, capacity, quotas, inventory)."""
    container = container_for()
    sync_cloud(worker_context(container, _NoDispatch()), cloud)
    typer.echo(f"synced {cloud}")


class _NoDispatch:
    """`yunguan sync` runs in the foreground; drift corrections it starts are
    left pending for the workers' sweep to send."""

    def dispatch(
        self, task: str, args: tuple[object, ...], *, queue: str, countdown: float = 0.0
    ) -> None:
        return None


def _table(rows: list[Operation], clouds: dict[int, str], nodes: dict[int, str]) -> Table:
    table = Table()
    for col in ("id", "kind", "cloud", "node", "status", "attempts", "error", "created"):
        table.add_column(col)
    for op in rows:
        table.add_row(
            str(op.id),
            op.kind,
            clouds.get(op.cloud_id, "?"),
            nodes.get(op.node_id, "?"),
            op.status,
            str(op.attempts),
            (op.last_error_code or "")
            + (f": {op.last_error_message[:60]}" if op.last_error_message else ""),
            f"{op.created_at:%Y-%m-%d %H:%M:%S}",
        )
    return table


@ops_app.command("list")
def ops_list(
    status: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Recent operations, newest first."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        q = select(Operation).order_by(Operation.id.desc()).limit(limit)
        if status:
            q = q.where(Operation.status == status)
        rows = list(uow.session.scalars(q).all())
        clouds = dict(uow.session.execute(select(Cloud.id, Cloud.code)).all())
        nodes = dict(uow.session.execute(select(OrgNode.id, OrgNode.code)).all())
    Console().print(_table(rows, clouds, nodes))


@ops_app.command("show")
def ops_show(op_id: int) -> None:
    """One operation in full."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        op = ops.get(uow.session, op_id)
        for col in Operation.__table__.columns:
            typer.echo(f"{col.name}: {getattr(op, col.name)}")


@ops_app.command("retry")
def ops_retry(op_id: int) -> None:
    """Make a failed operation pending again; the workers' sweep sends it."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        op = ops.retry(uow.session, op_id)
        kind = uow.session.scalar(select(Cloud.kind).where(Cloud.id == op.cloud_id))
        uow.commit()
    if container.settings.broker_url:
        CeleryDispatcher(celery_app(container)).dispatch(
            TASK_RUN_OPERATION, (op_id,), queue=queue_for(kind or "openstack")
        )
    typer.echo(f"operation {op_id} is pending again")


@tenant_app.command("retire")
def tenant_retire(cloud: str, project: str) -> None:
    """Retire PROJECT's tenant on CLOUD: disabled and zero quota, no data deleted."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        s = uow.session
        if s.scalar(select(Cloud.id).where(Cloud.code == cloud)) is None:
            raise NotFoundError(f"no cloud {cloud!r}", code="cloud.not_found")
        node = s.scalar(select(OrgNode).where(OrgNode.code == project, OrgNode.level == "project"))
        if node is None:
            raise NotFoundError(f"no project {project!r}", code="org.not_found")
        add_outbox(
            s,
            "tenant.retire",
            "cloud_tenant",
            f"{cloud}/{project}",
            {"cloud": cloud, "node": project, "level": "project"},
        )
        uow.commit()
    typer.echo(f"retirement of {project} on {cloud} queued")
