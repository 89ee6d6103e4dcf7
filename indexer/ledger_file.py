"""A purchase ledger file (CSV or XLSX) read into rows of text cells under canonical names.

A buyer's ledger of received invoices is whatever its accounting system exports, so the
header row is matched loosely: names are compared case-, accent- and punctuation-blind
(`Số hóa đơn`, `so_hoa_don` and `SO HOA DON` are one name), and each canonical column has a
few common names (docs/formats.md#purchase-ledger-csv-or-xlsx lists them). Other columns
are kept out and reported as ignored; a name that two columns map to is an error, never a
guess.

The format is recognised from the content: an XLSX file is a zip archive; anything else is
read as CSV (UTF-8, with or without BOM; GB 18030, which covers GBK exports of Chinese
systems, when it is not UTF-8; comma, semicolon or tab separated, whichever the header uses).
XLSX: the first worksheet, its first row the header; cells are read as displayed values
(`data_only`), numbers to at most 15 significant digits as a spreadsheet shows them, dates as
ISO dates. Key columns (numbers with leading zeros, 20-digit numbers) belong in text cells.

XML inside XLSX is parsed by openpyxl with defusedxml (no entity expansion), after a check of
the archive's uncompressed size, so a small upload cannot unpack into gigabytes, and of its
first worksheet's row numbers (below), done with the package's small XML parts and the sheet
XML streamed, before openpyxl opens the workbook (its own cost, about 2 ms of CPU however
small the file, is spent only on a file that passed them).

Work is bounded by our limits, never by what the file claims: blank rows count toward a bound
of their own (`MAX_BLANK_ROWS`), and a sheet whose rows reach past the line limit and that
bound (one row at r=1048576, under a `<dimension>` of A1:XFD1048576) is refused from its
row numbers, read from the XML as a stream before any row is built, instead of padding a
million empty ones; only the first `MAX_COLUMNS` columns are read; a CSV line is at most
`MAX_LINE` characters before the csv module splits it; and reading stops with an error
after `PARSE_SECONDS` (the service reads ledgers in a worker thread, off the event loop).
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import time
import unicodedata
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import openpyxl
from openpyxl.packaging.relationship import get_dependents
from openpyxl.xml.constants import ARC_CONTENT_TYPES, XLSM, XLSX, XLTM, XLTX
from openpyxl.xml.functions import fromstring

#: Canonical column -> the header names accepted for it (compared after `normalise_header`).
COLUMNS: dict[str, tuple[str, ...]] = {
    "seller_tax_id": (
        "seller_tax_id",
        "seller",
        "seller_tax_code",
        "seller_mst",
        "mst",
        "nbmst",
        "mst_nguoi_ban",
        "mst_ban",
        "ma_so_thue",
        "ma_so_thue_nguoi_ban",
        "销售方纳税人识别号",
        "销售方识别号",
        "销方识别号",
        "销方税号",
    ),
    "template": ("template", "invoice_template", "khmshdon", "mau_so", "ky_hieu_mau_so"),
    "series": ("series", "invoice_series", "khhdon", "ky_hieu", "ky_hieu_hoa_don"),
    "invoice_code": ("invoice_code", "code", "fpdm", "发票代码"),
    "number": ("number", "invoice_number", "invoice_no", "shdon", "so_hoa_don", "fphm", "发票号码"),
    "issued_on": (
        "issued_on",
        "issue_date",
        "invoice_date",
        "date",
        "nlap",
        "ngay_lap",
        "ngay_hoa_don",
        "kprq",
        "开票日期",
    ),
    "amount": (
        "amount",
        "amount_before_tax",
        "net_amount",
        "tgtcthue",
        "tien_truoc_thue",
        "je",
        "金额",
        "不含税金额",
    ),
    "tax_amount": ("tax_amount", "tax", "vat", "vat_amount", "tgtthue", "tien_thue", "税额"),
    "total_amount": (
        "total_amount",
        "total",
        "gross_amount",
        "tgtttbso",
        "tong_tien",
        "tong_tien_thanh_toan",
        "jshj",
        "价税合计",
    ),
}
#: Without one of these a row cannot name an invoice.
REQUIRED = ("number",)
MAX_LINES = 100_000
#: Columns of a sheet that are read (the ledger's own columns come first in any export).
MAX_COLUMNS = 256
#: Longest CSV line read (256 columns of a long name or amount each).
MAX_LINE = 64 * 1024
#: Blank rows (or rows missing from a sheet's XML, which openpyxl pads) a ledger may hold.
MAX_BLANK_ROWS = 10_000
#: Seconds one file may take to read before it is refused.
PARSE_SECONDS = 30.0
#: Bound on an XLSX archive's unpacked size (a 100,000-line sheet is about 30 MB).
MAX_XLSX_UNPACKED = 256 * 1024 * 1024
_ZIP_MAGIC = b"PK\x03\x04"
_SEPARATORS = (",", ";", "\t")


class LedgerFileError(ValueError):
    """A file that cannot be read as a ledger at all (no row of it is checked)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True, slots=True)
class LedgerRow:
    row: int  # the row number a spreadsheet shows (the header is row 1)
    cells: dict[str, str]  # canonical column -> text, blanks left out


@dataclass(frozen=True, slots=True)
class LedgerTable:
    format: str  # csv | xlsx
    columns: dict[str, str]  # canonical column -> the header as written
    ignored: tuple[str, ...]  # headers matched to no column
    rows: tuple[LedgerRow, ...]


def normalise_header(name: str) -> str:
    """Lower case, accents and `đ` folded, runs of spaces and punctuation as one `_`."""
    folded = unicodedata.normalize("NFKD", name.strip().lower().replace("đ", "d"))
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    words = "".join(c if c.isalnum() else " " for c in plain).split()
    return "_".join(words)


_ALIASES = {
    normalise_header(alias): column for column, aliases in COLUMNS.items() for alias in aliases
}


def _map_header(header: Sequence[str]) -> tuple[dict[int, str], dict[str, str], list[str]]:
    """Column position -> canonical name, canonical -> header as written, ignored headers."""
    positions: dict[int, str] = {}
    named: dict[str, str] = {}
    ignored: list[str] = []
    for position, raw in enumerate(header):
        column = _ALIASES.get(normalise_header(raw))
        if column is None:
            if raw.strip():
                ignored.append(raw.strip())
            continue
        if column in named:
            raise LedgerFileError(
                "ambiguous_columns",
                f"two columns mean {column}",
                column=column,
                headers=[named[column], raw.strip()],
            )
        positions[position] = column
        named[column] = raw.strip()
    missing = [c for c in REQUIRED if c not in named]
    if missing:
        raise LedgerFileError(
            "missing_columns",
            "the header names no invoice number column",
            missing=missing,
            accepted={c: list(COLUMNS[c]) for c in missing},
        )
    return positions, named, ignored


def max_rows_read() -> int:
    """Rows visited at most, blank ones included: the line limit and `MAX_BLANK_ROWS`."""
    return MAX_LINES + MAX_BLANK_ROWS


def _too_large(message: str, **details: Any) -> LedgerFileError:
    return LedgerFileError("ledger_too_large", message, **details)


def _bounded(
    records: Iterator[tuple[int, Sequence[str]]], seconds: float
) -> Iterator[tuple[int, Sequence[str]]]:
    """`records`, each counted, blank or not, against `max_rows_read()` and the deadline."""
    limit = max_rows_read()
    deadline = time.monotonic() + seconds
    for visited, record in enumerate(records, start=1):
        if visited > limit:
            raise _too_large(
                f"the ledger has more than {limit} rows, blank ones included", limit=limit
            )
        if visited % 1000 == 0 and time.monotonic() > deadline:
            raise _too_large(f"the ledger could not be read within {seconds:g} s", limit_s=seconds)
        yield record


def _table(
    fmt: str, records: Iterator[tuple[int, Sequence[str]]], seconds: float = PARSE_SECONDS
) -> LedgerTable:
    records = _bounded(records, seconds)
    try:
        _, header = next(records)
    except StopIteration:
        raise LedgerFileError("empty_ledger", "the ledger has no header row") from None
    positions, named, ignored = _map_header(header)
    rows: list[LedgerRow] = []
    for number, values in records:
        if not any(v.strip() for v in values):
            continue  # a blank line between blocks of a ledger is not a line of it
        cells = {
            positions[i]: v.strip() for i, v in enumerate(values) if i in positions and v.strip()
        }
        if len(rows) >= MAX_LINES:
            raise _too_large(f"a ledger holds at most {MAX_LINES} lines", limit=MAX_LINES)
        rows.append(LedgerRow(number, cells))
    return LedgerTable(fmt, named, tuple(ignored), tuple(rows))


def _csv_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return body.decode("gb18030")
    except UnicodeDecodeError:
        raise LedgerFileError(
            "unreadable_ledger", "the CSV is neither UTF-8 nor GB 18030 text (nor an XLSX file)"
        ) from None


def _lines(text: str) -> Iterator[str]:
    for line in io.StringIO(text, newline=""):
        if len(line) > MAX_LINE:
            raise LedgerFileError(
                "unreadable_ledger",
                f"a CSV line is longer than {MAX_LINE} characters",
                limit=MAX_LINE,
            )
        yield line


def _csv_records(text: str) -> Iterator[tuple[int, Sequence[str]]]:
    first = text[:MAX_LINE].split("\n", 1)[0]
    separator = max(_SEPARATORS, key=first.count)
    try:
        yield from enumerate(csv.reader(_lines(text), delimiter=separator, strict=True), start=1)
    except csv.Error as exc:
        raise LedgerFileError("unreadable_ledger", f"the CSV cannot be read: {exc}") from None


def cell_text(value: object) -> str:
    """An XLSX cell as text: numbers as a spreadsheet displays them (15 significant digits,
    whole numbers without a point), dates as ISO dates."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return format(value, ".15g")
    return str(value)


def _xlsx_records(body: bytes) -> Iterator[tuple[int, Sequence[str]]]:
    first = _checked_archive(body)
    try:
        book = openpyxl.load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a malformed workbook
        raise LedgerFileError(
            "unreadable_ledger", "the XLSX workbook cannot be read", error=type(exc).__name__
        ) from None
    try:
        sheet = book.worksheets[0]
        path = getattr(sheet, "_worksheet_path", None)  # openpyxl's read-only sheet
        if isinstance(path, str) and path != first:  # not the sheet checked before opening
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                _check_row_numbers(archive, path)
        declared = sheet.max_column  # from the sheet's <dimension>, which may lie
        width = min(MAX_COLUMNS, declared) if isinstance(declared, int) else MAX_COLUMNS
        sheet.reset_dimensions()  # no padding of rows past the last one actually written
        rows = sheet.iter_rows(max_col=width, values_only=True)
        for number, values in enumerate(rows, start=1):
            if values.count(None) == len(values):  # a row missing from the XML, padded
                yield number, ()
            else:
                yield number, [cell_text(v) for v in values]
    finally:
        book.close()


def _checked_archive(body: bytes) -> str | None:
    """The checks an XLSX passes before openpyxl opens it (which alone costs about 2 ms of
    CPU, most of it building a Workbook and its styles): the archive's unpacked size, and the
    row numbers of its first worksheet. Returns that sheet's part, or None when the package
    does not name it plainly (openpyxl then finds it, and its rows are checked after)."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_XLSX_UNPACKED:
                raise _too_large(
                    f"the XLSX unpacks to more than {MAX_XLSX_UNPACKED} bytes",
                    limit=MAX_XLSX_UNPACKED,
                )
            first = _first_worksheet(archive)
            if first is not None:
                _check_row_numbers(archive, first)
            return first
    except zipfile.BadZipFile:
        raise LedgerFileError("unreadable_ledger", "the file is a damaged zip (XLSX)") from None


#: `[Content_Types].xml` types of a workbook part, in the order openpyxl prefers them.
_WORKBOOK_TYPES = (XLTM, XLTX, XLSM, XLSX)
_CONTENT_TYPES = "{http://schemas.openxmlformats.org/package/2006/content-types}"
_SPREADSHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELATIONSHIPS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def _first_worksheet(archive: zipfile.ZipFile) -> str | None:
    """The part openpyxl reads as `worksheets[0]`, found as openpyxl finds it: the workbook
    part named in `[Content_Types].xml`, then the first of its `<sheet>`s whose relationship
    leads to a part of the archive, chart sheets skipped. Only the package's small XML parts
    are parsed (with defusedxml, as openpyxl does). None when something is missing or
    malformed: openpyxl decides then, and refuses the file or finds the sheet itself."""
    try:
        overrides = fromstring(archive.read(ARC_CONTENT_TYPES)).iter(f"{_CONTENT_TYPES}Override")
        parts = {o.get("ContentType"): o.get("PartName", "") for o in reversed(list(overrides))}
        workbook = next((parts[t] for t in _WORKBOOK_TYPES if t in parts), "").removeprefix("/")
        if not workbook:
            return None
        folder, name = posixpath.split(workbook)
        rels = get_dependents(archive, posixpath.join(folder, "_rels", f"{name}.rels")).to_dict()
        names = set(archive.namelist())
        for sheet in fromstring(archive.read(workbook)).iter(f"{_SPREADSHEET}sheet"):
            rel = rels.get(sheet.get(f"{_RELATIONSHIPS}id"))
            if rel is not None and rel.target in names and "chartsheet" not in rel.Type:
                return str(rel.target)
    except Exception:  # a package openpyxl will refuse or read its own way (see above)
        return None
    return None


_ROW_NUMBER = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row\b[^<>]*?\sr=[\"']([0-9]{1,9})[\"']")
_OVERLAP = 1024


def _check_row_numbers(archive: zipfile.ZipFile, path: str) -> None:
    """Refuse a sheet whose `<row r=...>` numbers go past `max_rows_read()`: openpyxl would
    pad every missing row before it. Streamed: the sheet XML is never held whole."""
    limit = max_rows_read()
    with archive.open(path) as sheet:
        tail = b""
        while chunk := sheet.read(1024 * 1024):
            buffer = tail + chunk
            cut = max(0, len(buffer) - _OVERLAP)
            for match in _ROW_NUMBER.finditer(buffer):
                if match.start() < cut and int(match.group(1)) > limit:
                    raise _too_large(
                        f"the sheet has rows past row {limit}, blank ones included", limit=limit
                    )
            tail = buffer[cut:]
        for match in _ROW_NUMBER.finditer(tail):
            if int(match.group(1)) > limit:
                raise _too_large(
                    f"the sheet has rows past row {limit}, blank ones included", limit=limit
                )


def read_ledger(body: bytes, *, seconds: float = PARSE_SECONDS) -> LedgerTable:
    """The ledger's rows, or `LedgerFileError` for a file that is not a readable ledger
    (`ledger_too_large` past a limit, or when it is not read within `seconds`)."""
    if body.startswith(_ZIP_MAGIC):
        return _table("xlsx", _xlsx_records(body), seconds)
    return _table("csv", _csv_records(_csv_text(body)), seconds)
