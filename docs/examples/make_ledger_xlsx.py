"""Write docs/examples/ledger.xlsx: a Chinese buyer's purchase ledger as an accounting system
exports it (Chinese headers, key columns as text cells, dates as date cells, amounts as
numbers), for `POST /api/v1/reports/ledger` and `invoice-verify report ledger`.

Run from the repository root: `.venv/bin/python docs/examples/make_ledger_xlsx.py`.
tests/test_docs_examples.py checks that the committed file holds exactly these rows.
"""

from __future__ import annotations

import io
import sys
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
from openpyxl.workbook.workbook import Workbook
from openpyxl.xml.constants import ARC_CORE
from openpyxl.xml.functions import tostring

OUT = Path(__file__).with_name("ledger.xlsx")
BUYER_TAX_ID = "91310115MA1K3XYZ2P"
HEADER = ("发票代码", "发票号码", "开票日期", "销售方纳税人识别号", "金额", "税额", "价税合计",
          "备注")
#: invoice code (empty for a fully digitalised invoice), number, issue date, seller,
#: amount before tax, tax, total, remark (not a ledger column: listed as ignored).
ROWS: tuple[tuple[str, str, date, str, float, float, float, str], ...] = (
    ("4403251130", "00012345", date(2025, 3, 18), "91440300MA5G00001X",
     10000.00, 1300.00, 11300.00, "增值税专用发票"),
    ("044032500111", "00067890", date(2025, 3, 19), "91440300MA5G00001X",
     250.00, 12.32, 217.62, "金额录入错误 (amount mistyped: 205.30)"),
    ("", "25442000000012345678", date(2025, 3, 20), "91440300MA5G00001X",
     1000.00, 60.00, 1060.00, "数电普票"),
    ("", "25442000000000000001", date(2025, 3, 25), "91440300MA5G00001X",
     99.00, 0.99, 99.99, "未开具 (never issued)"),
)
#: Fixed workbook times, so the file is the same every time it is written.
STAMP = datetime(2025, 4, 1, 9, 0, 0)


def build() -> Workbook:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "进项发票"
    sheet.append(HEADER)
    for code, number, issued, seller, amount, tax, total, remark in ROWS:
        sheet.append((code or None, number, issued, seller, amount, tax, total, remark))
    for row in sheet.iter_rows(min_row=2):
        row[0].number_format = row[1].number_format = "@"  # key columns are text cells
        row[2].number_format = "yyyy-mm-dd"
        for cell in row[4:7]:
            cell.number_format = "0.00"
    book.properties.creator = "invoice-verify docs/examples"
    book.properties.created = book.properties.modified = STAMP
    return book


def xlsx_bytes() -> bytes:
    """The workbook as an XLSX file in which the archive entries and the modification time
    carry `STAMP` too (openpyxl sets both to now), so writing it again gives the same
    members."""
    book = build()
    buffer = io.BytesIO()
    book.save(buffer)
    book.properties.modified = STAMP
    core = tostring(book.properties.to_tree())
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=STAMP.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            data = core if info.filename == ARC_CORE else source.read(info.filename)
            target.writestr(entry, data)
    return out.getvalue()


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    target.write_bytes(xlsx_bytes())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
