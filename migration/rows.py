"""Validating one imported row: cell values → typed field values, or problems.

Cells arrive as openpyxl gives them (str, int, float, datetime) or as CSV
strings. Each field has one converter; a converter returns the typed value
or raises `CellError` with a message that names what was expected, so the
report can say "row 17, column 等保级别: '五级' is not an MLPS level 1–4".
References to other objects (departments, rooms, clouds, waves, projects)
are only parsed here; `controlplane.ledgerstore.importer` resolves them.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from migration.columns import SPECS, SheetKind
from migration.model import (
    MLPS_LEVELS,
    ArchitectureRequirement,
    AssetKind,
    AssetStatus,
    Classification,
    Origin,
    RoomStatus,
    SystemState,
    label,
)

E = TypeVar("E", bound=StrEnum)


class CellError(ValueError):
    """One cell's value is not acceptable; the message says what was expected."""


@dataclass(frozen=True)
class CellProblem:
    field: str
    message: str


@dataclass
class ParsedRow:
    """One data row: its spreadsheet line, the typed values of the columns the
    sheet has (absent columns keep their stored values) and what is wrong."""

    kind: SheetKind
    line: int
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[CellProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def text(value: object, max_len: int = 200) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a serial typed as a number: 12345.0 → "12345"
    if isinstance(value, datetime | date):
        raise CellError(f"expected text, got the date {value:%Y-%m-%d}")
    s = str(value).strip()
    if len(s) > max_len:
        raise CellError(f"longer than {max_len} characters ({len(s)})")
    return s or None


def _enum(cls: type[E], value: object) -> E | None:
    s = text(value)
    if s is None:
        return None
    wanted = s.lower()
    for member in cls:
        if wanted in {member.value.lower(), (label(member) or "").lower()}:
            return member
    names = ", ".join(f"{m.value}/{label(m)}" if label(m) else m.value for m in cls)
    raise CellError(f"{s!r} is not one of {names}")


def enum_or(cls: type[E], default: E | None) -> Callable[[object], E | None]:
    def convert(value: object) -> E | None:
        found = _enum(cls, value)
        return default if found is None else found

    return convert


_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


def mlps_level(value: object) -> int | None:
    """3, "3", "三级", "第三级", "等保三级", "三级等保" → 3."""
    if isinstance(value, bool):
        raise CellError("expected an MLPS level 1–4")
    if isinstance(value, int | float) and float(value).is_integer():
        level = int(value)
    else:
        s = text(value)
        if s is None:
            return None
        core = re.sub(r"[等保第级\s]", "", s)
        level = _CN_DIGITS.get(core, int(core) if core.isdigit() else 0)
    if level not in MLPS_LEVELS:
        raise CellError(f"{value!r} is not an MLPS (等保) level 1–4")
    return level


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")


def day(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise CellError(f"{value!r} is a number, not a date (expected e.g. 2026-03-31)")
    s = text(value)
    if s is None:
        return None
    s = s.split(" ")[0].split("T")[0]  # "2026-03-31 00:00:00" from a date-typed export
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise CellError(f"{s!r} is not a date (expected e.g. 2026-03-31 or 2026年3月31日)")


_SEPARATORS = re.compile(r"[;；,，、\n]+")


def names(value: object) -> tuple[str, ...]:
    """A list cell: `a; b`, `a，b`, `a、b` or one per line; order kept, duplicates dropped."""
    s = text(value, max_len=4000)
    if s is None:
        return ()
    seen: dict[str, None] = {}
    for part in _SEPARATORS.split(s):
        if part.strip():
            seen.setdefault(part.strip(), None)
    return tuple(seen)


def _text(max_len: int) -> Callable[[object], str | None]:
    return lambda v: text(v, max_len)


_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def code(value: object) -> str | None:
    s = text(value, 63)
    if s is not None and not _CODE.match(s):
        raise CellError(f"{s!r} is not a code (lower-case letters, digits and '-')")
    return s


CONVERTERS: dict[SheetKind, dict[str, Callable[[object], Any]]] = {
    SheetKind.SYSTEMS: {
        "department": _text(200),
        "name": _text(200),
        "classification": enum_or(Classification, Classification.NON_CLASSIFIED),
        "mlps_level": mlps_level,
        "architecture": enum_or(ArchitectureRequirement, ArchitectureRequirement.ANY),
        "origin": enum_or(Origin, Origin.EXISTING),
        "location": _text(200),
        "target_cloud": _text(200),
        "wave": code,
        "state": enum_or(SystemState, None),
        "projects": names,
        "depends_on": names,
        "exemption_reason": _text(1000),
        "exemption_approver": _text(200),
        "notes": _text(2000),
    },
    SheetKind.ROOMS: {
        "department": _text(200),
        "name": _text(200),
        "address": _text(300),
        "status": enum_or(RoomStatus, RoomStatus.ACTIVE),
        "notes": _text(2000),
    },
    SheetKind.ASSETS: {
        "serial": _text(100),
        "department": _text(200),
        "room": _text(200),
        "kind": enum_or(AssetKind, None),
        "model": _text(200),
        "systems": names,
        "status": enum_or(AssetStatus, AssetStatus.IN_USE),
        "purchased_on": day,
        "notes": _text(2000),
    },
    SheetKind.WAVES: {
        "code": code,
        "name": _text(200),
        "scope": _text(200),
        "starts_on": day,
        "ends_on": day,
    },
}

_REQUIRED = {k: {c.field for c in cols if c.required} for k, cols in SPECS.items()}


def parse_row(kind: SheetKind, line: int, cells: Mapping[str, object]) -> ParsedRow:
    """Converts every present cell; collects every problem of the row."""
    row = ParsedRow(kind, line)
    for name, raw in cells.items():
        try:
            value = CONVERTERS[kind][name](raw)
        except CellError as exc:
            row.problems.append(CellProblem(name, str(exc)))
            continue
        if value is None and name in _REQUIRED[kind]:
            row.problems.append(CellProblem(name, "is required"))
            continue
        row.values[name] = value
    if kind is SheetKind.WAVES:
        start, end = row.values.get("starts_on"), row.values.get("ends_on")
        if start is not None and end is not None and end < start:
            row.problems.append(CellProblem("ends_on", f"ends ({end}) before it starts ({start})"))
    return row


def is_blank(cells: Mapping[str, object]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in cells.values())
