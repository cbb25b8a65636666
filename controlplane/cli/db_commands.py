"""`yunguan db upgrade|downgrade|current`."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import container_for
from controlplane.db import migrate

app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)


@app.command()
def upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Upgrade the schema (default: to the newest revision)."""
    container = container_for()
    migrate.upgrade(container.engine, revision)
    typer.echo(f"database at {migrate.current_revision(container.engine)}")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="target, e.g. base or -1")]) -> None:
    """Downgrade the schema to REVISION."""
    container = container_for()
    migrate.downgrade(container.engine, revision)
    typer.echo(f"database at {migrate.current_revision(container.engine) or 'base'}")


@app.command()
def current() -> None:
    """Print the current and the head revision."""
    container = container_for()
    typer.echo(
        f"current {migrate.current_revision(container.engine) or 'base'}  "
        f"head {migrate.head_revision()}"
    )
