"""`yunguan ledger …`: the migration ledger (上云台账) from the command line.

The CLI is the operator's tool on the control-plane host: it acts with the
whole ledger in scope and audits as `system` with source `cli:<user>`.
Exit codes: 0 done, 2 bad input (nothing written; every problem printed),
3 a room that cannot retire yet (`room-check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from controlplane.cli.context import container_for
from controlplane.db.base import utcnow
from controlplane.db.uow import UnitOfWork
from controlplane.identity.bootstrap import cli_context
from controlplane.ledgerstore import rooms as room_store
from controlplane.ledgerstore.exporter import EXPORT_KINDS, export_ledger
from controlplane.ledgerstore.importer import import_ledger
from controlplane.ledgerstore.objects import get_room
from controlplane.ledgerstore.progress import progress as progress_view
from controlplane.ledgerstore.systems import find_system
from controlplane.ledgerstore.systems import transition as run_transition
from controlplane.vocabulary import InvalidInputError, Problem
from migration.columns import SheetKind
from migration.model import RoomStatus, SystemState
from migration.progress import Rate
from migration.report import Action, ImportReport
from migration.states import TransitionRequest

app = typer.Typer(
    help="The migration ledger (上云台账): systems, rooms, assets, waves.", no_args_is_help=True
)

EXIT_BLOCKED = 3


def _console() -> Console:
    """Wide tables stay whole when piped to a file (rich assumes 80 columns there)."""
    console = Console()
    if not console.is_terminal:
        console.width = 160
    return console


_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.UNCHANGED: "dim",
    Action.ERROR: "red",
}


def _print_report(console: Console, report: ImportReport, every_row: bool) -> None:
    if every_row:
        table = Table(title=f"{report.file}{' (dry run)' if report.dry_run else ''}")
        for col in ("sheet", "row", "kind", "key", "outcome", "detail"):
            table.add_column(col)
        for r in report.rows:
            detail = "; ".join(p.message for p in r.problems) or ", ".join(r.changed)
            style = _STYLE[r.action]
            table.add_row(
                r.sheet, str(r.row), r.kind, r.key, f"[{style}]{r.action.value}[/]", detail
            )
        console.print(table)
    for name in report.skipped_sheets:
        console.print(f"skipped sheet {name}")


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="an .xlsx workbook or a .csv file")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show every row's outcome, write nothing")
    ] = False,
    kind: Annotated[
        SheetKind | None, typer.Option(help="import only this kind (a CSV: what it holds)")
    ] = None,
    encoding: Annotated[str, typer.Option(help="of a CSV file, e.g. gb18030")] = "utf-8",
) -> None:
    """Import systems, rooms, assets and waves; any bad row means nothing is written."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"{file}: {exc.strerror or exc}", code="migration.import_unreadable"
        ) from exc
    container = container_for()
    console = _console()
    with UnitOfWork(container.session_factory) as uow:
        report = import_ledger(
            uow.session,
            str(file),
            data,
            ctx=cli_context(),
            dry_run=dry_run,
            kind=kind,
            encoding=encoding,
        )
        if report.written:
            uow.commit()
    _print_report(console, report, every_row=dry_run)
    if not report.ok:
        problems = report.problems
        raise InvalidInputError(
            str(problems[0]),
            code="migration.import_invalid",
            problems=[Problem("", str(p)) for p in problems] + [Problem("", report.summary())],
        )
    console.print(report.summary(), markup=False)


@app.command("export")
def export_file(
    file: Annotated[Path, typer.Argument(help="FILE.xlsx (every sheet) or FILE.csv (one kind)")],
    kind: Annotated[str | None, typer.Option(help=f"one of {', '.join(EXPORT_KINDS)}")] = None,
) -> None:
    """Export the ledger and its progress; the importer reads the file back unchanged."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        data = export_ledger(uow.session, str(file), None, utcnow().date(), kind)
    file.write_bytes(data)
    typer.echo(f"wrote {file} ({len(data):,} bytes)")


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _rates_table(title: str, rates: list[Rate]) -> Table:
    table = Table(title=title)
    for col in (
        "scope",
        "name",
        "systems",
        "classified",
        "exempted",
        "decomm.",
        "in scope",
        "accepted",
        "in progress",
        "rate",
    ):
        table.add_column(col, justify="right" if col not in {"scope", "name"} else "left")
    for r in rates:
        counts = (r.systems, r.classified, r.exempted, r.decommissioned, r.in_scope, r.accepted)
        table.add_row(r.scope, r.name, *map(str, counts), str(r.in_progress), _pct(r.rate))
    return table


@app.command()
def progress(
    prefecture: Annotated[
        str | None, typer.Option(help="a prefecture (or department) code")
    ] = None,
) -> None:
    """The "应上尽上" rate per department, prefecture and in total; waves and burn-down."""
    container = container_for()
    console = _console()
    with UnitOfWork(container.session_factory) as uow:
        view = progress_view(uow.session, None, utcnow().date(), under=prefecture)
    console.print(_rates_table(f"上云进度 {view.scope}", [view.rates.total, *view.rates.by_parent]))
    console.print(_rates_table("by department", view.rates.by_department))
    waves = Table(title="waves")
    for col in ("wave", "window", "systems", "finished", "unfinished", "remaining today", "status"):
        waves.add_column(col)
    for w in view.waves:
        remaining = str(w.burndown[-1].remaining) if w.burndown else "—"
        state = "[red]behind plan[/]" if w.behind_plan else "on plan"
        window = f"{w.wave.starts_on} → {w.wave.ends_on}"
        waves.add_row(
            w.wave.code, window, str(w.total), str(w.finished), str(w.unfinished), remaining, state
        )
    console.print(waves)
    rooms = ", ".join(f"{k} {v}" for k, v in view.rooms.items())
    assets = ", ".join(f"{k} {v}" for k, v in view.assets.items())
    console.print(f"rooms: {rooms}\nassets: {assets}", markup=False)


@app.command()
def transition(
    system: Annotated[str, typer.Argument(help="system id, or department/name")],
    state: Annotated[SystemState, typer.Argument(help="the state to move to")],
    reason: Annotated[
        str | None, typer.Option(help="why (needed to exempt, roll back, override)")
    ] = None,
    approver: Annotated[str | None, typer.Option(help="who signed the exemption")] = None,
    wave: Annotated[str | None, typer.Option(help="the wave, when planning")] = None,
    override: Annotated[
        bool, typer.Option("--override", help="accept without inventory evidence (needs --reason)")
    ] = False,
) -> None:
    """Move a system through the migration state machine (audited)."""
    container = container_for()
    with UnitOfWork(container.session_factory) as uow:
        system_id = find_system(uow.session, system)
        request = TransitionRequest(
            state, reason=reason, approver=approver, wave=wave, override=override
        )
        t = run_transition(uow.session, system_id, request, cli_context())
        uow.commit()
    typer.echo(f"{system}: {t.from_state.value} → {t.to_state.value}")
    if t.evidence.get("running"):
        typer.echo(
            f"evidence: {t.evidence['running']} running on {t.evidence['cloud']} "
            f"(synced {t.evidence['synced_at']})"
        )


@app.command("room-check")
def room_check(
    room: Annotated[str, typer.Argument(help="room id, or department/name")],
    retire: Annotated[
        bool, typer.Option("--retire", help="retire the room when nothing blocks")
    ] = False,
) -> None:
    """List what keeps a room from retiring; exit 3 while anything does."""
    container = container_for()
    console = _console()
    with UnitOfWork(container.session_factory) as uow:
        room_id = room_store.find_room(uow.session, room)
        _, record = get_room(uow.session, room_id, None)
        found = room_store.blockers(uow.session, room_id)
        if not found and retire and record["status"] is not RoomStatus.RETIRED:
            if record["status"] is RoomStatus.ACTIVE:
                room_store.set_status(uow.session, room_id, RoomStatus.CONSOLIDATING, cli_context())
            room_store.set_status(uow.session, room_id, RoomStatus.RETIRED, cli_context())
            uow.commit()
            typer.echo(f"{room}: retired")
            return
    if not found:
        typer.echo(f"{room} ({record['status']}): nothing blocks retirement")
        return
    table = Table(title=f"{room}: {len(found)} blocker(s)")
    for col in ("kind", "key", "state", "needs"):
        table.add_column(col)
    for b in found:
        needs = (
            "accepted, exempted or decommissioned" if b.kind == "system" else "retired or disposed"
        )
        table.add_row(b.kind, b.key, b.state, needs)
    console.print(table)
    raise typer.Exit(EXIT_BLOCKED)
