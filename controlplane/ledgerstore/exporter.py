"""Exporting the ledger and its progress to XLSX (every sheet) or CSV (one kind).

Exported sheets carry the bilingual headers (`系统名称/name`) and canonical
values, exactly what the importer reads back, so import → export → import
changes nothing. The `progress` sheet is a report; the importer skips it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from pathlib import PurePath
from typing import Any

from sqlalchemy.orm import Session

from controlplane.ledgerstore.progress import ProgressView, progress
from controlplane.ledgerstore.records import (
    Scopes,
    asset_query,
    asset_rows,
    room_records,
    system_query,
    system_rows,
    wave_records,
)
from controlplane.vocabulary import InvalidInputError
from migration.catalog import Record
from migration.columns import SPECS, SheetKind
from migration.sheets import Table, write_csv, write_xlsx

EXPORT_KINDS = ("waves", "rooms", "systems", "assets", "progress")

PROGRESS_HEADERS = (
    "层级/level", "范围/scope", "名称/name", "系统数/systems", "涉密/classified",
    "豁免/exempted", "下线/decommissioned", "应上云/in_scope", "已验收/accepted",
    "迁移中/in_progress", "未开始/not_started", "上云率/rate",
)  # fmt: skip


def _value(v: Any) -> Any:
    return v.value if isinstance(v, StrEnum) else v


def _row(kind: SheetKind, record: Record) -> list[Any]:
    out = []
    for col in SPECS[kind]:
        if col.field == "location":
            out.append(record.get("room") or record.get("current_cloud"))
        else:
            out.append(_value(record.get(col.field)))
    return out


def _table(kind: SheetKind, records: Sequence[Record]) -> Table:
    return Table(kind.value, [c.header for c in SPECS[kind]], [_row(kind, r) for r in records])


def _progress_table(view: ProgressView) -> Table:
    rows = []
    for r in [view.rates.total, *view.rates.by_parent, *view.rates.by_department]:
        rows.append(
            [
                r.level,
                r.scope,
                r.name,
                r.systems,
                r.classified,
                r.exempted,
                r.decommissioned,
                r.in_scope,
                r.accepted,
                r.in_progress,
                r.not_started,
                r.rate,
            ]
        )
    for w in view.waves:
        rows.append(
            [
                "wave",
                w.wave.code,
                w.wave.name,
                w.total,
                None,
                None,
                None,
                w.total,
                w.finished,
                w.unfinished,
                None,
                round(w.finished / w.total, 4) if w.total else None,
            ]
        )
    return Table("progress", PROGRESS_HEADERS, rows)


def ledger_tables(session: Session, scopes: Scopes, today: date) -> dict[str, Table]:
    waves = sorted(wave_records(session, scopes).values(), key=lambda r: r["code"])
    rooms = list(room_records(session, scopes).values())
    return {
        "waves": _table(SheetKind.WAVES, waves),
        "rooms": _table(SheetKind.ROOMS, rooms),
        "systems": _table(
            SheetKind.SYSTEMS, [r for _, r in system_rows(session, system_query(scopes))]
        ),
        "assets": _table(
            SheetKind.ASSETS, [r for _, r in asset_rows(session, asset_query(scopes))]
        ),
        "progress": _progress_table(progress(session, scopes, today)),
    }


def export_ledger(
    session: Session, name: str, scopes: Scopes, today: date, kind: str | None = None
) -> bytes:
    """XLSX: every sheet (or only `kind`); CSV: one kind, `systems` by default."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in {".xlsx", ".csv"}:
        raise InvalidInputError(
            f"cannot export to {name!r}: name a .xlsx or .csv file", code="migration.export_format"
        )
    if kind is not None and kind not in EXPORT_KINDS:
        raise InvalidInputError(
            f"unknown kind {kind!r} (expected {', '.join(EXPORT_KINDS)})",
            code="migration.export_kind",
        )
    tables = ledger_tables(session, scopes, today)
    if suffix == ".csv":
        return write_csv(tables[kind or "systems"])
    chosen = [tables[kind]] if kind else list(tables.values())
    return write_xlsx(chosen)
