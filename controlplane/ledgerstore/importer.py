"""Importing a spreadsheet into the ledger: read, plan, and write only when clean.

    report = import_ledger(uow.session, "台账.xlsx", data, ctx=..., dry_run=False)
    if report.written: uow.commit()

The whole file is planned against the ledger as the caller may see it; an
unreadable file, a header problem or any bad row means nothing is written
and the report names every problem. A clean import writes its records in
bulk and leaves one audit entry per department it changed (not one per row:
a 50,000-row sheet is one use case), carrying the file's SHA-256 and counts.
Re-importing the same file plans nothing but "unchanged" rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from sqlalchemy.orm import Session

from controlplane.identity import audit
from controlplane.identity.audit import AuditContext
from controlplane.ledgerstore.records import Scopes, load_catalog
from controlplane.ledgerstore.writer import PlanWriter
from controlplane.vocabulary import YunguanError
from migration.catalog import Catalog
from migration.columns import SheetKind
from migration.importing import Op, plan_import
from migration.mapping import prepare
from migration.report import ImportReport, RowProblem
from migration.sheets import read_sheets


def import_ledger(
    session: Session,
    name: str,
    data: bytes,
    *,
    ctx: AuditContext,
    dry_run: bool = False,
    kind: SheetKind | None = None,
    encoding: str = "utf-8",
    read_scopes: Scopes = None,
    write_scopes: Scopes = None,
) -> ImportReport:
    """Plans `data` and, unless `dry_run` or anything is wrong, writes it (no commit)."""
    report = ImportReport(file=name, dry_run=dry_run)
    try:
        sheets = read_sheets(name, data, encoding=encoding)
    except YunguanError as exc:
        report.file_problems.append(RowProblem("", 0, "", exc.message))
        return report
    mapped, problems, skipped = prepare(sheets, kind)
    report.file_problems.extend(problems)
    report.skipped_sheets = skipped
    serials = [
        str(row.values["serial"])
        for s in mapped
        if s.kind is SheetKind.ASSETS
        for row in s.rows
        if "serial" in row.values
    ]
    named = {
        str(r.values["department"]) for s in mapped for r in s.rows if r.values.get("department")
    }
    named |= {
        entry.rpartition("/")[0]
        for s in mapped
        for r in s.rows
        for entry in r.values.get("depends_on", ())
        if "/" in entry
    }
    catalog = load_catalog(
        session, read_scopes, write_scopes, serials=serials, departments=named, lock=not dry_run
    )
    plan = plan_import(mapped, catalog)
    report.rows = plan.outcomes
    if not report.ok or dry_run or not plan.ops:
        return report  # nothing to write: a dry run, a problem, or all unchanged
    PlanWriter(session).write(plan.ops)
    _audit(session, ctx, report.file, plan.ops, data, catalog)
    report.written = True
    return report


def _audit(
    session: Session, ctx: AuditContext, file: str, ops: list[Op], data: bytes, catalog: Catalog
) -> None:
    changed: dict[str, Counter[str]] = {}
    for op in ops:
        owner = op.record["scope"] if op.kind is SheetKind.WAVES else op.record["department"]
        changed.setdefault(owner, Counter())[f"{op.kind.value}_{op.action.value}"] += 1
    digest = hashlib.sha256(data).hexdigest()
    for owner, counts in sorted(changed.items()):
        audit.record(
            session,
            ctx,
            "migration.import",
            "migration_import",
            digest[:16],
            scope_path=catalog.path_of(owner),
            after={"file": file, "sha256": digest, "owner": owner, **counts},
        )
