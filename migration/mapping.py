"""Mapping a file's sheets onto the ledger: what each sheet holds, which column
is which field, and every row parsed. Called by the importer before planning.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from migration.columns import SheetKind, kind_of_headers, kind_of_title, map_headers
from migration.report import RowProblem, column_letter
from migration.rows import ParsedRow, parse_row
from migration.sheets import Sheet


@dataclass
class MappedSheet:
    title: str
    kind: SheetKind
    labels: dict[str, str]  # field → "C 等保级别", for problems
    rows: list[ParsedRow]


def prepare(
    sheets: Sequence[Sheet], only: SheetKind | None = None
) -> tuple[list[MappedSheet], list[RowProblem], list[str]]:
    """Decides what each sheet holds, maps its headers and parses its rows."""
    mapped: list[MappedSheet] = []
    problems: list[RowProblem] = []
    skipped: list[str] = []
    for sheet in sheets:
        known, kind = kind_of_title(sheet.title)
        if known and kind is None:
            skipped.append(f"{sheet.title} (a report)")
            continue
        if not sheet.headers:
            skipped.append(f"{sheet.title} (empty)")
            continue
        if not known and only is not None and len(sheets) == 1:
            kind = only  # one table (a CSV) is what --kind says; its headers must agree
        kind = kind or kind_of_headers(sheet.headers) or only
        if only is not None and kind is not only:
            skipped.append(f"{sheet.title} (not {only.value})")
            continue
        if kind is None:
            problems.append(
                RowProblem(
                    sheet.title,
                    sheet.header_line,
                    "",
                    "cannot tell what this sheet holds: title it systems, rooms, assets or "
                    "waves (业务系统, 机房, 资产, 迁移批次) or choose --kind",
                )
            )
            continue
        mapping, header_problems = map_headers(kind, sheet.headers)
        for hp in header_problems:
            col = f"{column_letter(hp.column)} {hp.header}" if hp.column >= 0 else hp.header
            problems.append(RowProblem(sheet.title, sheet.header_line, col, hp.message))
        if header_problems:
            continue
        labels = {f: f"{column_letter(i)} {sheet.headers[i]}" for i, f in mapping.items()}
        rows = [
            parse_row(
                kind, line, {f: cells[i] if i < len(cells) else None for i, f in mapping.items()}
            )
            for line, cells in sheet.rows
        ]
        mapped.append(MappedSheet(sheet.title, kind, labels, rows))
    if not mapped and not problems:
        problems.append(RowProblem("", 0, "", "nothing to import: no sheet with data rows"))
    return mapped, problems, skipped
