"""`/v1/migration/progress|import|export`: the "应上尽上" numbers and the spreadsheets.

Import takes the file as a multipart upload (field `file`) or as the raw body
(`?filename=` names it); the format comes from the bytes. The answer is the
per-row report: 200 when the import is clean (written unless `dry_run`), 422
`migration.import_invalid` with every problem when anything is wrong, and
then nothing is written. Rows outside the caller's scopes are problems too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from starlette.datastructures import UploadFile

from api.auth import Access
from api.deps import UoW
from api.routes.migration_access import Reader, Writer, node_for_read, read_scopes
from api.routes.migration_router import router
from controlplane.db.base import utcnow
from controlplane.ledgerstore.exporter import EXPORT_KINDS, export_ledger
from controlplane.ledgerstore.importer import import_ledger
from controlplane.ledgerstore.progress import progress
from controlplane.vocabulary import InvalidInputError, Problem
from migration.columns import SheetKind
from migration.sheets import MAX_BYTES

_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/progress")
def migration_progress(
    uow: UoW,
    access: Reader,
    prefecture: Annotated[
        str | None, Query(description="a prefecture (or department) code; default: all you see")
    ] = None,
) -> dict[str, Any]:
    """The rate (accepted / in-scope non-classified systems) per department,
    prefecture and in total; rooms and assets by status; waves with burn-down
    and the list of those behind plan."""
    if prefecture is not None:
        node_for_read(uow.session, prefecture, access)
    view = progress(uow.session, access.scopes, utcnow().date(), under=prefecture)
    return view.as_dict()


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def _too_big() -> InvalidInputError:
    return InvalidInputError(
        f"the upload exceeds {MAX_BYTES:,} bytes", code="migration.import_too_large"
    )


async def read_upload(
    request: Request,
    filename: Annotated[
        str | None, Query(max_length=255, description="the file's name, for a raw body")
    ] = None,
) -> Upload:
    ctype = request.headers.get("content-type", "")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BYTES + 64 * 1024:
        raise _too_big()
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidInputError(
                "send the spreadsheet as the multipart field 'file'",
                code="migration.import_no_file",
            )
        data = await file.read()
        name = file.filename or filename or "upload"
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BYTES:
                raise _too_big()
            chunks.append(chunk)
        data = b"".join(chunks)
        name = filename or ("upload.xlsx" if ctype.startswith(_XLSX) else "upload.csv")
    if len(data) > MAX_BYTES:
        raise _too_big()
    return Upload(name=name, data=data)


_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            _XLSX: {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/import", openapi_extra=_UPLOAD_DOC)
def import_spreadsheet(
    uow: UoW,
    access: Writer,
    upload: Annotated[Upload, Depends(read_upload)],
    kind: Annotated[SheetKind | None, Query(description="import only this kind")] = None,
    dry_run: Annotated[
        bool, Query(description="report every row's outcome; write nothing")
    ] = False,
    encoding: Annotated[str, Query(max_length=32, description="of a CSV file")] = "utf-8",
) -> dict[str, Any]:
    report = import_ledger(
        uow.session,
        upload.name,
        upload.data,
        ctx=access.audit,
        dry_run=dry_run,
        kind=kind,
        encoding=encoding,
        read_scopes=read_scopes(access),
        write_scopes=access.scopes,
    )
    if not report.ok:
        raise InvalidInputError(
            report.summary(),
            code="migration.import_invalid",
            problems=[Problem(p.where, p.message) for p in report.problems],
            extra={"report": report.as_dict(rows=dry_run)},
        )
    if report.written:
        uow.commit()
    return report.as_dict(rows=dry_run)


def _export_access(access: Access) -> tuple[str, ...]:
    return access.scopes


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {_XLSX: {}, "text/csv": {}}}},
)
def export_spreadsheet(
    uow: UoW,
    access: Reader,
    format_: Annotated[str, Query(alias="format", pattern="^(xlsx|csv)$")] = "xlsx",
    kind: Annotated[
        str | None, Query(description=f"one of {', '.join(EXPORT_KINDS)} (CSV: default systems)")
    ] = None,
) -> Response:
    """The ledger as the caller may see it: XLSX with every sheet, or one CSV table."""
    name = f"ledger-{kind or 'all'}.{format_}" if format_ == "xlsx" else f"{kind or 'systems'}.csv"
    data = export_ledger(uow.session, name, _export_access(access), utcnow().date(), kind)
    media = _XLSX if format_ == "xlsx" else "text/csv; charset=utf-8"
    return Response(
        content=data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
