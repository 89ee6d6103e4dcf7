"""A run's results as a CSV or XLSX download (the API's CSV columns, `verify.lookup.batch` and
`verify.reports.ledger`); cells are written through the project's spreadsheet-safe CSV
writer, and as text in XLSX."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from openpyxl import Workbook

from verify.http.csv_cells import dict_writer

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_bytes(columns: Sequence[str], rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = dict_writer(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")  # the BOM: spreadsheets read it as UTF-8


def _cell(value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def xlsx_bytes(columns: Sequence[str], rows: list[dict[str, Any]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("results")
    sheet.append(list(columns))
    for row in rows:
        sheet.append([_cell(row.get(c)) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def download(
    name: str, fmt: str, columns: Sequence[str], rows: list[dict[str, Any]]
) -> web.Response:
    if fmt == "xlsx":
        body, kind = xlsx_bytes(columns, rows), XLSX
    else:
        body, kind, fmt = csv_bytes(columns, rows), "text/csv; charset=utf-8", "csv"
    return web.Response(
        body=body,
        headers={
            "Content-Type": kind,
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
        },
    )
