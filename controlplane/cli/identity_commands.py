"""`yunguan user …`, `yunguan token …` and `yunguan audit verify`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from controlplane.cli.context import container_for
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.identity.bootstrap import cli_context, create_user_with_token
from controlplane.identity.roles import Role
from controlplane.identity.store import IdentityStore

users = typer.Typer(help="Users and their role bindings.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@users.command("create")
def create(
    login: Annotated[str, typer.Argument(help="login name, e.g. cs-admin")],
    role: Annotated[Role, typer.Option(help="first role")],
    scope: Annotated[
        str | None, typer.Option(help="org code the role applies to (default: the province)")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="default: LOGIN")] = None,
    token_days: Annotated[int, typer.Option(help="lifetime of the first token")] = 90,
) -> None:
    """Create a user with one role and print its first API token (shown once)."""
    container = container_for()
    secret = container.settings.effective_secret_key
    with UnitOfWork(container.session_factory) as uow:
        _, issued = create_user_with_token(
            uow.session,
            secret,
            login=login,
            display_name=display_name or login,
            role=role,
            scope=scope,
            days=token_days,
            ctx=cli_context(),
        )
        uow.commit()
    typer.echo(
        f"created {login} ({role.value}); token id {issued.id}, "
        f"expires {issued.expires_at:%Y-%m-%d}"
    )
    typer.echo(issued.plaintext)


@users.command("bind")
def bind(
    login: str,
    role: Annotated[Role, typer.Option()],
    scope: Annotated[str, typer.Option(help="org code")],
) -> None:
    """Give LOGIN another role at SCOPE."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        store = IdentityStore(uow.session)
        user = store.user(login)
        path = user.home_path
        store.bind(user, role, scope)
        audit.record(
            uow.session,
            cli_context(),
            "user.bind",
            "user",
            login,
            scope_path=path,
            after={"role": role.value, "scope": scope},
        )
        uow.commit()
    typer.echo(f"{login}: {role.value} at {scope}")


@users.command("list")
def list_users() -> None:
    """List users and their roles."""
    container = container_for()
    table = Table()
    for col in ("login", "name", "home", "roles"):
        table.add_column(col)
    with UnitOfWork(container.session_factory) as uow:
        for u in IdentityStore(uow.session).users(None, limit=10_000, offset=0):
            roles = ", ".join(f"{b.role}@{b.scope.code}" for b in u.bindings)
            table.add_row(u.login, u.display_name, u.home_scope.code if u.home_scope else "", roles)
    Console().print(table)


@tokens.command("create")
def token_create(
    login: str,
    name: Annotated[str, typer.Option()] = "cli",
    days: Annotated[int, typer.Option()] = 90,
) -> None:
    """Issue another token for LOGIN (printed once)."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        store = IdentityStore(uow.session)
        user = store.user(login)
        issued = store.issue_token(container.settings.effective_secret_key, user, name, days)
        path = user.home_path
        audit.record(
            uow.session,
            cli_context(),
            "token.issue",
            "token",
            str(issued.id),
            scope_path=path,
            after={"user": login, "name": name},
        )
        uow.commit()
    typer.echo(f"token id {issued.id} for {login}, expires {issued.expires_at:%Y-%m-%d}")
    typer.echo(issued.plaintext)


@tokens.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID at once."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        store = IdentityStore(uow.session)
        row = store.token(token_id)
        store.revoke(row)
        user = store.user_by_id(row.user_id)
        path = user.home_path
        audit.record(
            uow.session,
            cli_context(),
            "token.revoke",
            "token",
            str(token_id),
            scope_path=path,
            after={"user": user.login},
        )
        uow.commit()
    typer.echo(f"token {token_id} revoked")


@audit_app.command("verify")
def verify() -> None:
    """Walk the hash chain; exit 1 naming the first broken entry."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        result = audit.verify(uow.session)
    if result.ok:
        typer.echo(f"audit chain intact: {result.entries} entries")
        return
    typer.echo(
        f"error: audit chain broken at entry {result.broken_at}: {result.reason} "
        f"({result.entries} entries verified before it)",
        err=True,
    )
    raise typer.Exit(1)
