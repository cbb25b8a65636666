"""The documented columns of the ledger's sheets, in Chinese and English.

A header may be written in Chinese (`系统名称`), in English (`name`), or both
(`系统名称/name`, `系统名称(name)`, the export's own form); case, spaces,
full-width punctuation and a trailing `*` (the "required" mark many templates
carry) do not matter. A `序号` (row number) column and untitled columns are
ignored; any other unknown header is an error, because a misspelt `密 级` must
not silently import every system as non-classified. The README's column table
is generated from `SPECS` in spirit; keep them in step.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class SheetKind(StrEnum):
    SYSTEMS = "systems"
    ROOMS = "rooms"
    ASSETS = "assets"
    WAVES = "waves"


@dataclass(frozen=True)
class Column:
    field: str
    zh: str
    en: str
    required: bool = False

    @property
    def header(self) -> str:
        """The export's header: both names, so either reader understands it."""
        return f"{self.zh}/{self.en}"


C = Column
SPECS: dict[SheetKind, tuple[Column, ...]] = {
    SheetKind.SYSTEMS: (
        C("department", "所属部门", "department", required=True),
        C("name", "系统名称", "name", required=True),
        C("classification", "密级", "classification"),
        C("mlps_level", "等保级别", "mlps_level", required=True),
        C("architecture", "架构要求", "architecture"),
        C("origin", "建设类型", "origin"),
        C("location", "当前位置", "location"),
        C("target_cloud", "目标云", "target_cloud"),
        C("wave", "迁移批次", "wave"),
        C("state", "迁移状态", "state"),
        C("projects", "关联项目", "projects"),
        C("depends_on", "依赖系统", "depends_on"),
        C("exemption_reason", "豁免理由", "exemption_reason"),
        C("exemption_approver", "豁免审批人", "exemption_approver"),
        C("notes", "备注", "notes"),
    ),
    SheetKind.ROOMS: (
        C("department", "所属部门", "department", required=True),
        C("name", "机房名称", "name", required=True),
        C("address", "地址", "address"),
        C("status", "机房状态", "status"),
        C("notes", "备注", "notes"),
    ),
    SheetKind.ASSETS: (
        C("serial", "序列号", "serial", required=True),
        C("department", "所属部门", "department", required=True),
        C("room", "所在机房", "room", required=True),
        C("kind", "资产类型", "kind", required=True),
        C("model", "品牌型号", "model"),
        C("systems", "承载系统", "systems"),
        C("status", "资产状态", "status"),
        C("purchased_on", "购置日期", "purchased_on"),
        C("notes", "备注", "notes"),
    ),
    SheetKind.WAVES: (
        C("code", "批次编号", "code", required=True),
        C("name", "批次名称", "name", required=True),
        C("scope", "范围", "scope", required=True),
        C("starts_on", "开始日期", "starts_on", required=True),
        C("ends_on", "结束日期", "ends_on", required=True),
    ),
}

# Extra spellings seen in departments' sheets.
ALIASES: dict[SheetKind, dict[str, str]] = {
    SheetKind.SYSTEMS: {
        "部门": "department",
        "等保等级": "mlps_level",
        "mlps": "mlps_level",
        "状态": "state",
        "位置": "location",
        "批次": "wave",
    },
    SheetKind.ROOMS: {"部门": "department", "状态": "status", "room": "name"},
    SheetKind.ASSETS: {
        "部门": "department",
        "机房": "room",
        "类型": "kind",
        "状态": "status",
        "sn": "serial",
        "serial_number": "serial",
    },
    SheetKind.WAVES: {"编号": "code", "名称": "name"},
}

# Sheet titles that say what a sheet holds; `progress` is a report, never imported.
SHEET_TITLES: dict[str, SheetKind | None] = {
    "systems": SheetKind.SYSTEMS, "业务系统": SheetKind.SYSTEMS, "系统": SheetKind.SYSTEMS,
    "rooms": SheetKind.ROOMS, "机房": SheetKind.ROOMS,
    "assets": SheetKind.ASSETS, "资产": SheetKind.ASSETS, "it资产": SheetKind.ASSETS,
    "waves": SheetKind.WAVES, "迁移批次": SheetKind.WAVES, "批次": SheetKind.WAVES,
    "progress": None, "进度": None, "上云进度": None,
}  # fmt: skip

IGNORED_HEADERS = frozenset({"", "序号", "no", "no.", "#"})

# A header that only one kind of sheet has: how an untitled sheet or a CSV is recognised.
_SIGNATURES: dict[SheetKind, frozenset[str]] = {
    SheetKind.SYSTEMS: frozenset({"系统名称", "classification", "密级", "mlps_level", "等保级别"}),
    SheetKind.ROOMS: frozenset({"机房名称", "address", "地址"}),
    SheetKind.ASSETS: frozenset({"serial", "序列号"}),
    SheetKind.WAVES: frozenset({"starts_on", "开始日期", "批次编号"}),
}


def normalise(text: object) -> str:
    """Case, spaces, full-width forms and the required-mark do not matter."""
    s = unicodedata.normalize("NFKC", "" if text is None else str(text)).strip().lower()
    s = re.sub(r"\s+", "", s).rstrip("*")
    return re.sub(r"[_-]", "", s) if s.isascii() else s


def _parts(header: object) -> list[str]:
    """`系统名称/name`, `系统名称(name)` → both names, normalised."""
    text = unicodedata.normalize("NFKC", "" if header is None else str(header))
    return [n for n in (normalise(p) for p in re.split(r"[/()|]", text)) if n]


def _lookup(kind: SheetKind) -> dict[str, str]:
    table = {normalise(c.zh): c.field for c in SPECS[kind]}
    table.update({normalise(c.en): c.field for c in SPECS[kind]})
    table.update({normalise(k): v for k, v in ALIASES[kind].items()})
    return table


def field_of(kind: SheetKind, header: object) -> str | None:
    """The field a header names, or None when it names none (or two)."""
    table = _lookup(kind)
    norm = normalise(header)
    if norm in table:
        return table[norm]
    found = {table[p] for p in _parts(header) if p in table}
    return found.pop() if len(found) == 1 else None


@dataclass(frozen=True)
class HeaderProblem:
    column: int  # 0-based index in the header row
    header: str
    message: str


def map_headers(
    kind: SheetKind, headers: Sequence[object]
) -> tuple[dict[int, str], list[HeaderProblem]]:
    """Column index → field, and every problem with the header row."""
    mapping: dict[int, str] = {}
    problems: list[HeaderProblem] = []
    seen: dict[str, int] = {}
    expected = ", ".join(c.header for c in SPECS[kind])
    for i, raw in enumerate(headers):
        text = "" if raw is None else str(raw).strip()
        if normalise(text) in IGNORED_HEADERS:
            continue
        field = field_of(kind, text)
        if field is None:
            problems.append(
                HeaderProblem(
                    i, text, f"unknown column {text!r} for {kind.value} (expected: {expected})"
                )
            )
        elif field in seen:
            problems.append(
                HeaderProblem(i, text, f"column {text!r} repeats column {seen[field] + 1}")
            )
        else:
            seen[field] = i
            mapping[i] = field
    for c in SPECS[kind]:
        if c.required and c.field not in seen:
            problems.append(HeaderProblem(-1, c.header, f"required column {c.header!r} is missing"))
    return mapping, problems


def kind_of_title(title: str) -> tuple[bool, SheetKind | None]:
    """(known title?, kind) — a known title of None is a report sheet to skip."""
    norm = normalise(title)
    if norm in SHEET_TITLES:
        return True, SHEET_TITLES[norm]
    return False, None


def kind_of_headers(headers: Sequence[object]) -> SheetKind | None:
    """The one kind whose signature headers appear, or None (none or several)."""
    names = {p for h in headers for p in [normalise(h), *_parts(h)]}
    kinds = [k for k, sig in _SIGNATURES.items() if names & {normalise(s) for s in sig}]
    return kinds[0] if len(kinds) == 1 else None
