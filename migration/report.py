"""The import report: one outcome per data row, and what was wrong where.

Every problem names the sheet, the spreadsheet row, the column (letter and
header as written in the file) and the reason, so a department can fix its
sheet without asking. The API returns the report as JSON (422 when any row
failed), the CLI prints it with rich.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    ERROR = "error"


@dataclass(frozen=True)
class RowProblem:
    sheet: str
    row: int  # the spreadsheet's line number (the header is usually line 1)
    column: str  # "C 等保级别", or "" for the whole row or file
    message: str

    @property
    def where(self) -> str:
        """`sheet!row [column]`, as much of it as applies ("" for the whole file)."""
        if not self.sheet:
            return ""
        row = f"!{self.row}" if self.row else ""
        return f"{self.sheet}{row}" + (f" [{self.column}]" if self.column else "")

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class RowOutcome:
    sheet: str
    row: int
    kind: str
    key: str
    action: Action
    changed: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


@dataclass
class ImportReport:
    file: str
    dry_run: bool
    rows: list[RowOutcome] = field(default_factory=list)
    file_problems: list[RowProblem] = field(default_factory=list)  # headers, sheets
    skipped_sheets: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def problems(self) -> list[RowProblem]:
        return self.file_problems + [p for r in self.rows for p in r.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        counted = Counter(r.action.value for r in self.rows)
        return {a.value: counted.get(a.value, 0) for a in Action}

    def summary(self) -> str:
        if self.file_problems and not self.rows:
            more = len(self.file_problems) - 1
            extra = f" (and {more} more problems)" if more else ""
            return f"{self.file_problems[0]}{extra}; nothing written"
        c = self.counts()
        verb = "would be" if self.dry_run or not self.ok else "were"
        text = (
            f"{self.file}: {len(self.rows)} rows: {c['create']} created, {c['update']} updated, "
            f"{c['unchanged']} unchanged, {c['error']} with errors"
        )
        if not self.ok:
            return f"{text}; {len(self.problems)} problems, nothing written"
        return f"{text} ({verb} written)" if self.dry_run else text

    def as_dict(self, *, rows: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "file": self.file,
            "dry_run": self.dry_run,
            "written": self.written,
            "counts": self.counts(),
            "skipped_sheets": self.skipped_sheets,
            "problems": [p.__dict__ for p in self.problems],
        }
        if rows:
            body["rows"] = [
                {
                    "sheet": r.sheet,
                    "row": r.row,
                    "kind": r.kind,
                    "key": r.key,
                    "action": r.action.value,
                    "changed": r.changed,
                    "problems": [p.message for p in r.problems],
                }
                for r in self.rows
            ]
        return body


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
