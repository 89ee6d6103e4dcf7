"""Purchase ledger files as accounting systems export them: CSV text and XLSX workbooks
(openpyxl, the library the service reads them with)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

import openpyxl


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """One sheet; values keep their Python type (text, numbers, dates become cells of that
    type), so a test can give numbers and dates as a spreadsheet would hold them."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
