"""Reading ledger files: header names, encodings, separators, spreadsheet cells, limits."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest

from indexer import ledger_file
from indexer.ledger_file import (
    LedgerFileError,
    LedgerRow,
    cell_text,
    normalise_header,
    read_ledger,
)
from tests.ledgers import csv_bytes, xlsx_bytes


@pytest.mark.parametrize(("header", "normalised"), [
    ("Số hóa đơn", "so_hoa_don"), ("SO HOA DON", "so_hoa_don"), (" so-hoa.don ", "so_hoa_don"),
    ("MST người bán", "mst_nguoi_ban"), ("Tổng tiền thanh toán", "tong_tien_thanh_toan"),
    ("发票号码", "发票号码"), ("Invoice No.", "invoice_no"), ("KHMSHDon", "khmshdon"),
])
def test_header_names_compare_without_case_accents_or_punctuation(
        header: str, normalised: str) -> None:
    assert normalise_header(header) == normalised


def test_csv_columns_are_mapped_and_others_ignored() -> None:
    table = read_ledger(csv_bytes(
        ["Invoice No.", "Seller", "Ký hiệu", "Mẫu số", "Ngày lập", "Total", "Account"],
        [["12", "0100109106", "C22TAA", "1", "2022-05-15", "1100000", "331"],
         ["", "", "", "", "", "", ""],
         [" 13 ", "0100109106", "C22TAA", "1", "", "", "331"]]))
    assert table.format == "csv"
    assert table.columns == {"number": "Invoice No.", "seller_tax_id": "Seller",
                             "series": "Ký hiệu", "template": "Mẫu số",
                             "issued_on": "Ngày lập", "total_amount": "Total"}
    assert table.ignored == ("Account",)
    assert table.rows == (
        LedgerRow(2, {"number": "12", "seller_tax_id": "0100109106", "series": "C22TAA",
                      "template": "1", "issued_on": "2022-05-15", "total_amount": "1100000"}),
        LedgerRow(4, {"number": "13", "seller_tax_id": "0100109106", "series": "C22TAA",
                      "template": "1"}))


def test_semicolons_a_bom_and_gb18030_are_read() -> None:
    semi = read_ledger("\ufeffnumber;total_amount\n1;100,5\n".encode())
    assert semi.rows == (LedgerRow(2, {"number": "1", "total_amount": "100,5"}),)
    gbk = read_ledger("发票代码,发票号码,价税合计\n013002200211,00000011,217.62\n"
                      .encode("gb18030"))
    assert gbk.columns == {"invoice_code": "发票代码", "number": "发票号码",
                           "total_amount": "价税合计"}
    assert gbk.rows[0].cells == {"invoice_code": "013002200211", "number": "00000011",
                                 "total_amount": "217.62"}


def test_xlsx_cells_read_as_a_spreadsheet_shows_them() -> None:
    table = read_ledger(xlsx_bytes(
        ["发票代码", "发票号码", "开票日期", "价税合计", "note"],
        [["013002200211", "00000011", date(2023, 3, 23), 217.62, None],
         [None, None, None, None, None],
         [None, 23442000000014209621, datetime(2023, 2, 15, 11, 0), 0.1 + 0.2, "x"]]))
    assert table.format == "xlsx"
    assert table.ignored == ("note",)
    assert table.rows == (
        LedgerRow(2, {"invoice_code": "013002200211", "number": "00000011",
                      "issued_on": "2023-03-23", "total_amount": "217.62"}),
        # a 20-digit number in a number cell has lost its digits: the line will not match
        LedgerRow(4, {"number": "2.34420000000142e+19", "issued_on": "2023-02-15",
                      "total_amount": "0.3"}))


@pytest.mark.parametrize(("value", "text"), [
    (None, ""), (1100000, "1100000"), (1100000.0, "1100000"), (217.62, "217.62"),
    (-110.0, "-110"), (0.1 + 0.2, "0.3"), (1e20, "1e+20"), ("00000011", "00000011"),
    (date(2022, 5, 15), "2022-05-15"), (datetime(2022, 5, 15, 23, 59), "2022-05-15"),
])
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


@pytest.mark.parametrize(("body", "code"), [
    (b"", "empty_ledger"),
    (b"seller,total\n0100109106,1\n", "missing_columns"),
    (b"so hoa don,shdon\n1,1\n", "ambiguous_columns"),
    (b"PK\x03\x04garbage", "unreadable_ledger"),
    (b"number\n\xff\xfe\xff\n", "unreadable_ledger"),
    (b'number\n"1"2"\n', "unreadable_ledger"),
])
def test_unreadable_files(body: bytes, code: str) -> None:
    with pytest.raises(LedgerFileError) as caught:
        read_ledger(body)
    assert caught.value.code == code


def test_a_zip_that_is_no_workbook_is_unreadable() -> None:
    workbook = xlsx_bytes(["number"], [[1]])
    broken = workbook.replace(b"xl/workbook.xml", b"xl/workbook.xmX")
    with pytest.raises(LedgerFileError) as caught:
        read_ledger(broken)
    assert (caught.value.code, caught.value.details["error"]) == ("unreadable_ledger",
                                                                  "KeyError")


def test_limits_on_lines_and_unpacked_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_file, "MAX_LINES", 2)
    assert len(read_ledger(b"number\n1\n\n2\n").rows) == 2  # blank rows do not count
    with pytest.raises(LedgerFileError) as caught:
        read_ledger(b"number\n1\n2\n3\n")
    assert caught.value.code == "ledger_too_large"
    workbook = xlsx_bytes(["number"], [[1]])
    monkeypatch.setattr(ledger_file, "MAX_XLSX_UNPACKED", 1000)
    with pytest.raises(LedgerFileError) as caught:
        read_ledger(workbook)
    assert caught.value.code == "ledger_too_large"


def hostile_sheet(sheet_data: str, dimension: str = "A1:XFD1048576") -> bytes:
    """A real workbook whose first sheet's XML is replaced: a `<dimension>` that claims the
    whole grid and the rows given (1.5 KB zipped for a million-row claim)."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_bytes(["number"], [[1]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "xl/worksheets/sheet1.xml":
                data = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/'
                        f'main"><dimension ref="{dimension}"/><sheetData>{sheet_data}'
                        '</sheetData></worksheet>').encode()
            target.writestr(name, data)
    return out.getvalue()


def _inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def peak_of(fn: Callable[[], Any]) -> tuple[Any, int]:
    """What `fn` returned or raised, and the Python heap peak while it ran (a bound measured
    without timing anything)."""
    tracemalloc.start()
    try:
        try:
            result: Any = fn()
        except LedgerFileError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_dimension_bomb_is_refused_after_the_rows_bound() -> None:
    body = hostile_sheet(f'<row r="1">{_inline("A1", "number")}</row>'
                         f'<row r="1048576">{_inline("XFD1048576", "1")}</row>')
    assert len(body) < 8 * 1024
    result, peak = peak_of(lambda: read_ledger(body))
    assert isinstance(result, LedgerFileError)
    assert (result.code, result.details) == ("ledger_too_large",
                                             {"limit": ledger_file.max_rows_read()})
    assert peak < 16 * 1024 * 1024, peak  # rows are counted, never held


def test_rows_as_written_are_read_and_columns_are_bounded() -> None:
    rows = "".join(f'<row r="{n}">{_inline(f"A{n}", str(n))}{_inline(f"XFD{n}", "x")}</row>'
                   for n in range(2, 2002))
    body = hostile_sheet(f'<row r="1">{_inline("A1", "number")}</row>{rows}')
    table, peak = peak_of(lambda: read_ledger(body))
    assert [r.cells for r in table.rows[:2]] == [{"number": "2"}, {"number": "3"}]
    assert len(table.rows) == 2000
    assert peak < 32 * 1024 * 1024, peak  # 2,000 rows, not 2,000 x 16,384 cells


def test_blank_csv_lines_and_long_lines_are_bounded() -> None:
    blank, blank_peak = peak_of(lambda: read_ledger(b"number\n1\n" + b"\n" * 4_000_000))
    assert isinstance(blank, LedgerFileError)
    assert blank.code == "ledger_too_large"
    wide, wide_peak = peak_of(lambda: read_ledger(b"number\n" + b"1;" * 1_000_000 + b"\n"))
    assert isinstance(wide, LedgerFileError)
    assert wide.code == "unreadable_ledger"
    # the 4 MB and 2 MB texts themselves, never a list per blank line or per cell
    assert max(blank_peak, wide_peak) < 48 * 1024 * 1024, (blank_peak, wide_peak)
