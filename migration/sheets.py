"""Reading and writing the ledger's spreadsheets: XLSX (openpyxl) and CSV.

Readers stream: XLSX through openpyxl's read-only mode (a 50,000-row sheet is
never loaded as a whole workbook), CSV line by line. The format comes from the
file's bytes, not its name, so a CSV renamed `.xlsx` or an Excel 97 `.xls`
gets a sentence that says so instead of a zip error. CSV must be UTF-8
(a BOM is fine) unless an encoding is named; when it is not, the error says
whether it reads as GB18030, the usual encoding of Chinese Windows exports.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import PurePath
from typing import Any

from controlplane.vocabulary import InvalidInputError

MAX_BYTES = 64 * 1024 * 1024
MAX_ROWS = 200_000  # per sheet; documented in the README
_HEADER_SCAN = 10  # a title row or two above the header is common

_ZIP = b"PK\x03\x04"
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")  # Excel 97–2003 .xls


def unreadable(message: str) -> InvalidInputError:
    return InvalidInputError(message, code="migration.import_unreadable")


@dataclass
class Sheet:
    """One table of a file: its title, the header row and the data rows after it."""

    title: str
    header_line: int
    headers: list[object]
    rows: list[tuple[int, list[object]]]  # (spreadsheet line, cells), blank rows dropped


def _is_blank(cells: Sequence[object]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _split(title: str, lines: Iterator[tuple[int, list[object]]]) -> Sheet:
    """Finds the header (the first row with two or more cells) and collects the rest."""
    header_line, headers = 0, []
    for line, cells in lines:
        if sum(1 for c in cells if c is not None and str(c).strip()) >= 2:
            header_line, headers = line, cells
            break
        if line >= _HEADER_SCAN:
            break
    if not header_line:
        return Sheet(title, 0, [], [])
    rows: list[tuple[int, list[object]]] = []
    for line, cells in lines:
        if _is_blank(cells):
            continue
        if len(rows) >= MAX_ROWS:
            raise unreadable(
                f"sheet {title!r} has more than {MAX_ROWS:,} data rows; split the file"
            )
        rows.append((line, cells))
    return Sheet(title, header_line, headers, rows)


def detect_format(name: str, data: bytes) -> str:
    """ "xlsx" or "csv", from the bytes; refuses what is neither."""
    suffix = PurePath(name).suffix.lower()
    if data.startswith(_ZIP):
        return "xlsx"
    if data.startswith(_OLE2):
        raise unreadable(f"{name} is an Excel 97–2003 .xls file; save it as .xlsx (or CSV)")
    if suffix in {".xlsx", ".xlsm"}:
        kind = "text" if _looks_like_text(data) else "not a workbook"
        raise unreadable(
            f"{name} is named {suffix} but is not an XLSX workbook (its content is {kind}); "
            "if it is CSV, name it .csv"
        )
    return "csv"


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    return b"\x00" not in head


def read_sheets(name: str, data: bytes, *, encoding: str = "utf-8") -> list[Sheet]:
    """Every sheet of an XLSX file, or the one table of a CSV file."""
    if len(data) > MAX_BYTES:
        raise unreadable(f"{name} is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    if not data.strip():
        raise unreadable(f"{name} is empty")
    if detect_format(name, data) == "xlsx":
        return _read_xlsx(name, data)
    return [_read_csv(name, data, encoding)]


def _read_xlsx(name: str, data: bytes) -> list[Sheet]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise unreadable(f"{name} is not a readable XLSX workbook ({exc})") from exc
    try:
        sheets = []
        for ws in book.worksheets:
            sheets.append(_split(ws.title, _numbered(ws.iter_rows(values_only=True))))
        return sheets
    finally:
        book.close()


def _numbered(rows: Iterable[Sequence[object]]) -> Iterator[tuple[int, list[object]]]:
    for i, cells in enumerate(rows, start=1):
        yield i, list(cells)


def _decode(name: str, data: bytes, encoding: str) -> str:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
    try:
        return data.decode(codec)
    except LookupError as exc:
        raise unreadable(f"unknown encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        hint = ""
        if codec == "utf-8-sig":
            try:
                data.decode("gb18030")
                hint = (
                    "; it reads as GB18030 (common for Chinese Excel exports): "
                    "pass --encoding gb18030 (API: ?encoding=gb18030) or save it as UTF-8"
                )
            except UnicodeDecodeError:
                hint = "; save it as UTF-8"
        raise unreadable(
            f"{name} is not valid {encoding} text: byte 0x{data[exc.start]:02x} "
            f"at offset {exc.start} (line {line}){hint}"
        ) from exc


def _read_csv(name: str, data: bytes, encoding: str) -> Sheet:
    text = _decode(name, data, encoding)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines = ((reader.line_num, list[object](cells)) for cells in reader)
    return _split(PurePath(name).stem, lines)


# -- writing -------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    title: str
    headers: Sequence[str]
    rows: Iterable[Sequence[Any]]


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, tuple | list):
        return "; ".join(str(v) for v in value) or None
    if isinstance(value, date | int | float):
        return value
    return str(value)


def write_xlsx(tables: Sequence[Table]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for table in tables:
        ws = book.create_sheet(title=table.title)
        ws.append(list(table.headers))
        for row in table.rows:
            ws.append([_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_csv(table: Table) -> bytes:
    """UTF-8 with a BOM, so Excel on a Chinese Windows opens it as UTF-8."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.headers)
    for row in table.rows:
        writer.writerow(["" if (c := _cell(v)) is None else c for v in row])
    return out.getvalue().encode("utf-8-sig")
