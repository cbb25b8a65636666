"""`yunguan capacity …`, `yunguan quota …` and `yunguan request …`.

Thin: each command opens one transaction (`run_in_transaction`, retried on a
lost race), calls one use case of `quotas.service`, audits its changes as the
local admin (`cli:<user>`), commits and prints with rich.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import date
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree
from sqlalchemy.orm import Session

from controlplane.cli.context import container_for
from controlplane.db.retry import run_in_transaction
from controlplane.identity import audit
from controlplane.identity.bootstrap import cli_context
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import Architecture, CloudRole, InvalidInputError, ResourceClass
from quotas import service
from quotas.inputs import parse_class
from quotas.model import (
    Actor,
    Change,
    CloudSelector,
    GrantRow,
    RequestItem,
    RequestState,
)
from quotas.ports import QuotaStore, RequestFilter

T = TypeVar("T")

capacity_app = typer.Typer(help="Pool capacity per cloud and resource class.", no_args_is_help=True)
quota_app = typer.Typer(help="The grant trees: show, grant, check.", no_args_is_help=True)
request_app = typer.Typer(help="Quota requests and approvals.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(capacity_app, name="capacity")
    app.add_typer(quota_app, name="quota")
    app.add_typer(request_app, name="request")


def _actor() -> Actor:
    try:
        return Actor(f"cli:{getpass.getuser()}")
    except (KeyError, OSError):
        return Actor("cli:unknown")


def _run(work: Callable[[QuotaStore, Session], T]) -> T:
    """One transaction: the use case, then its audit entries, then commit."""
    container = container_for()
    try:

        def unit(session: Session) -> T:
            result = work(SqlQuotaStore(session), session)
            for change in getattr(result, "changes", ()) or ():
                _audit(session, change)
            if isinstance(result, Change):
                _audit(session, result)
            return result

        return run_in_transaction(container.session_factory, unit)
    finally:
        container.close()


def _audit(session: Session, change: Change) -> None:
    audit.record(
        session,
        cli_context(),
        change.action,
        change.object_type,
        change.object_id,
        scope_path=change.scope_path,
        before=change.before,
        after=change.after,
    )


def _amounts(pairs: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise InvalidInputError(
                f"{pair!r}: write CLASS=AMOUNT, e.g. vcpu=8", code="request.invalid"
            )
        out[name.strip()] = int(value)
    return out


# -- capacity ---------------------------------------------------------------


@capacity_app.command("set")
def capacity_set(
    cloud: str,
    resource_class: Annotated[str, typer.Argument(metavar="CLASS")],
    total: int,
    reserved: Annotated[int, typer.Option(help="held back from allocation")] = 0,
    oversubscription: Annotated[
        float | None, typer.Option(help="policy factor ≥ 1.0 over the allocatable")
    ] = None,
    force: Annotated[bool, typer.Option(help="record it even below what is granted")] = False,
) -> None:
    """Declare the capacity of CLOUD for CLASS (until a provider reports it)."""
    result = _run(
        lambda store, _s: service.set_capacity(
            store,
            _actor(),
            cloud,
            resource_class,
            total,
            reserved=reserved,
            oversubscription=oversubscription,
            force=force,
        )
    )
    pool = result.rows[0]
    typer.echo(
        f"{cloud}/{pool.resource_class.value}: total {pool.total}, reserved "
        f"{pool.capacity_reserved}, allocatable {pool.limit}, granted {pool.allocated}, "
        f"free {pool.free}"
    )


@capacity_app.command("show")
def capacity_show(cloud: Annotated[str | None, typer.Option(help="one cloud")] = None) -> None:
    """Every pool: capacity, overcommit, what is granted from it and what is free."""
    pools = _run(lambda store, _s: service.pools(store, cloud))
    table = Table(title="pools")
    for col in ("cloud", "class", "total", "overcommit", "reserved", "limit", "granted", "free"):
        text_col = col in {"cloud", "class"}
        table.add_column(col, justify="left" if text_col else "right", no_wrap=text_col)
    for c, row in pools:
        declared = row.id is not None
        table.add_row(
            c.code,
            row.resource_class.value,
            str(row.total) if declared else "-",
            f"{row.overcommit:g}",
            str(row.capacity_reserved),
            str(row.limit),
            str(row.allocated),
            str(row.free),
        )
    Console().print(table)


# -- quota ------------------------------------------------------------------


def _label(row: GrantRow) -> str:
    if row.is_pool:
        return (
            f"[bold]{row.node.code}[/bold] pool {row.resource_class.value}: limit {row.limit}, "
            f"granted {row.allocated}, free {row.free}"
        )
    extra = f", reserved {row.consumed}" if row.consumed else ""
    return (
        f"{row.node.code} [dim]({row.node.level.value})[/dim]: granted {row.granted}, "
        f"to children {row.allocated}{extra}, free {row.free}"
    )


@quota_app.command("tree")
def tree(
    cloud: Annotated[str, typer.Option(help="cloud code, e.g. provincial")],
    resource_class: Annotated[str | None, typer.Option("--class", help="one class")] = None,
) -> None:
    """The grant tree of CLOUD: pool → prefectures/departments → projects."""
    found, rows = _run(lambda store, _s: service.grant_tree(store, cloud, resource_class))
    console = Console()
    if not rows:
        console.print(f"no grants on {found.code} yet: `yunguan capacity set {found.code} …`")
        return
    by_class: dict[ResourceClass, list[GrantRow]] = {}
    for row in rows:
        by_class.setdefault(row.resource_class, []).append(row)
    for cls, class_rows in by_class.items():
        root = Tree(f"[bold]{found.code}[/bold] {cls.value}")
        branches: dict[str, Tree] = {}
        for row in sorted(class_rows, key=lambda r: r.node.path):
            parent_path = row.node.path.rstrip("/").rsplit("/", 1)[0] + "/"
            parent = branches.get(parent_path, root)
            branches[row.node.path] = parent.add(_label(row))
        console.print(root)


@quota_app.command("grant")
def grant(
    node: str,
    cloud: str,
    resource_class: Annotated[str, typer.Argument(metavar="CLASS")],
    amount: int,
    force: Annotated[bool, typer.Option(help="allow going below observed usage")] = False,
    if_match: Annotated[int | None, typer.Option(help="expected generation")] = None,
) -> None:
    """Set NODE's grant of CLASS on CLOUD to AMOUNT (from its parent's headroom)."""
    result = _run(
        lambda store, _s: service.set_grant(
            store,
            _actor(),
            node,
            cloud,
            resource_class,
            amount,
            force=force,
            expected_generation=if_match,
        )
    )
    row = result.rows[0]
    note = " (below observed usage: forced)" if result.forced else ""
    typer.echo(
        f"{node} on {cloud}: {row.resource_class.value} granted {row.granted} "
        f"(generation {row.generation}){note}"
    )


@quota_app.command("usage")
def usage(
    project: str,
    cloud: str,
    resource_class: Annotated[str, typer.Argument(metavar="CLASS")],
    used: int,
) -> None:
    """Record what the provider reports PROJECT uses (normally the sync task does)."""
    _run(lambda store, _s: service.set_observed_usage(store, project, cloud, resource_class, used))
    typer.echo(f"{project} on {cloud}: {resource_class} in use {used}")


@quota_app.command("check")
def check(cloud: Annotated[str | None, typer.Option(help="one cloud")] = None) -> None:
    """Verify every invariant and derived sum; exit 1 when one is broken."""

    def work(store: QuotaStore, _s: Session) -> dict[str, list[str]]:
        codes = [cloud] if cloud else [c.code for c in store.clouds()]
        return {code: service.check_invariants(store, code) for code in codes}

    problems = _run(work)
    broken = {code: p for code, p in problems.items() if p}
    for code, found in broken.items():
        for problem in found:
            typer.echo(f"{code}: {problem}", err=True)
    if broken:
        raise typer.Exit(1)
    typer.echo(f"quota trees sound: {len(problems)} clouds checked")


@quota_app.command("auto-approve")
def auto_approve(
    scope: str,
    limits: Annotated[list[str] | None, typer.Argument(metavar="CLASS=MAX...")] = None,
    off: Annotated[bool, typer.Option("--off", help="remove the policy")] = False,
) -> None:
    """Approve at filing requests under SCOPE within these per-class deltas."""
    parsed = None if off else _amounts(limits or [])
    if parsed == {}:
        raise InvalidInputError("give CLASS=MAX pairs, or --off", code="request.invalid")
    _run(lambda store, _s: service.set_auto_approval(store, _actor(), scope, parsed))
    typer.echo(f"{scope}: auto-approval {'off' if off else parsed}")


@quota_app.command("expire")
def expire() -> None:
    """Release held reservations whose TTL has passed (normally a periodic job)."""
    from datetime import UTC, datetime

    n = _run(lambda store, _s: service.expire_reservations(store, datetime.now(UTC)))
    typer.echo(f"expired {n} reservations")


# -- requests ---------------------------------------------------------------


@request_app.command("list")
def list_requests(
    state: Annotated[RequestState | None, typer.Option(help="only this state")] = None,
    project: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Requests, newest first."""
    found = _run(
        lambda store, _s: service.list_requests(
            store, RequestFilter(state=state, project=project, limit=limit)
        )
    )
    table = Table(title=f"{len(found)} requests")
    for col in ("id", "state", "project", "cloud", "items", "by", "reason"):
        table.add_column(col, no_wrap=col in {"id", "state", "project"})
    for r in found:
        cloud = r.cloud.code if r.cloud else (r.selector.describe() if r.selector else "?")
        items = ", ".join(
            f"{i.resource_class.value}{'=' if i.absolute else '+'}{i.amount}" for i in r.items
        )
        table.add_row(
            str(r.id), r.state.value, r.project.code, cloud, items, r.requested_by, r.reason
        )
    Console().print(table)


@request_app.command("show")
def show(request_id: int) -> None:
    """One request, all fields."""
    req = _run(lambda store, _s: service.get_request(store, request_id))
    for key, value in req.as_dict().items():
        typer.echo(f"{key}: {value}")


@request_app.command("file")
def file(
    project: str,
    amounts: Annotated[list[str], typer.Argument(metavar="CLASS=AMOUNT...")],
    reason: Annotated[str, typer.Option(help="why the project needs it")],
    cloud: Annotated[str | None, typer.Option(help="a cloud code")] = None,
    role: Annotated[CloudRole | None, typer.Option(help="or any cloud of this role")] = None,
    arch: Annotated[Architecture | None, typer.Option(help="… and architecture")] = None,
    absolute: Annotated[bool, typer.Option(help="amounts are targets, not deltas")] = False,
    needed_by: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
) -> None:
    """File a request for PROJECT (approved at once if a policy covers it)."""
    items = [
        RequestItem(parse_class(k, k), v, absolute=absolute) for k, v in _amounts(amounts).items()
    ]
    selector = CloudSelector(role, arch) if role is not None else None
    due = date.fromisoformat(needed_by) if needed_by else None
    result = _run(
        lambda store, _s: service.file_request(
            store,
            _actor(),
            project,
            items,
            reason=reason,
            cloud_code=cloud,
            selector=selector,
            needed_by=due,
        )
    )
    typer.echo(f"request {result.request.id}: {result.request.state.value}")


@request_app.command("approve")
def approve(
    request_id: int,
    cloud: Annotated[str | None, typer.Option(help="resolve 'any cloud of role X'")] = None,
    draw_from: Annotated[str | None, typer.Option(help="scope whose headroom is used")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Approve a pending request, taking the headroom now."""
    result = _run(
        lambda store, _s: service.approve_request(
            store, _actor(), request_id, cloud_code=cloud, draw_from=draw_from, note=note
        )
    )
    granted = ", ".join(f"{r.resource_class.value} {r.granted}" for r in result.grants)
    typer.echo(f"request {request_id}: approved; {result.request.project.code} now has {granted}")


@request_app.command("reject")
def reject(request_id: int, note: Annotated[str, typer.Option(help="why")]) -> None:
    """Reject a pending request."""
    _run(lambda store, _s: service.reject_request(store, _actor(), request_id, note=note))
    typer.echo(f"request {request_id}: rejected")


@request_app.command("cancel")
def cancel(request_id: int) -> None:
    """Withdraw a pending request."""
    _run(lambda store, _s: service.cancel_request(store, _actor(), request_id))
    typer.echo(f"request {request_id}: cancelled")
