"""`yunguan topology apply|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from controlplane.cli.context import container_for
from controlplane.db.uow import UnitOfWork
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import load_document
from controlplane.topology.store import TopologyStore

app = typer.Typer(help="The organisation tree and the clouds.", no_args_is_help=True)


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="topology YAML, e.g. examples/hunan.yaml")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the diff, write nothing")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="delete clouds and org nodes absent from FILE")
    ] = False,
) -> None:
    """Apply FILE declaratively and idempotently; nothing is written if any entry is invalid."""
    doc = load_document(file)  # validate before touching the database
    container = container_for()
    result = apply_topology(
        container.session_factory, doc, source=str(file), dry_run=dry_run, prune=prune
    )
    for change in result.changes:
        typer.echo(change.describe())
    verb = "would change" if dry_run else "changed"
    typer.echo(
        f"{file}: {verb} {len(result.changes)} objects" if result.changes else f"{file}: no changes"
    )


@app.command()
def show() -> None:
    """Print the organisation tree and the clouds."""
    container = container_for()
    console = Console()
    with UnitOfWork(container.session_factory) as uow:
        store = TopologyStore(uow.session)
        nodes = store.org_nodes()
        clouds = store.clouds()
        if not nodes:
            console.print("no topology yet: run `yunguan topology apply FILE`")
            return
        branches: dict[int, Tree] = {}
        root: Tree | None = None
        for n in nodes:
            label = f"[bold]{n.name}[/bold] [dim]{n.code} ({n.level})[/dim]"
            if n.parent_id is None:
                root = branches[n.id] = Tree(label)
            else:
                branches[n.id] = branches[n.parent_id].add(label)
        table = Table(title=f"{len(clouds)} clouds")
        for col in ("code", "name", "kind", "role", "owner", "architectures", "region", "enabled"):
            table.add_column(col)
        for c in clouds:
            table.add_row(
                c.code,
                c.name,
                c.kind,
                c.role,
                c.owner.code,
                ", ".join(c.architectures),
                c.region,
                "yes" if c.enabled else "no",
            )
    if root is not None:
        console.print(root)
    console.print(table)
