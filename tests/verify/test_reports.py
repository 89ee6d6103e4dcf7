"""`GET /api/v1/reports/missing` and `invoice-verify report missing`, through intake."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import SELLER, SELLER_2, cancel, cn_digital, cn_invoice, package, vn_invoice
from verify.cli import app

URL = "/api/v1/reports/missing"
#: C22TAA: 1 missing at the start, 4-5 in the middle, 8 before the last; 3 cancelled.
NUMBERS = [2, 3, 6, 7, 9]


PACKAGE_INVOICES = ([vn_invoice(n) for n in NUMBERS] + [vn_invoice(1, series="C22TBB")]
                    + [vn_invoice(5, seller_tax_id=SELLER_2)]
                    + [cn_invoice(f"{n:08d}") for n in (11, 14)] + [cn_digital()])


async def load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package(PACKAGE_INVOICES, [cancel(3)]))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["result"] == "accepted"


def holed(**over: Any) -> dict[str, Any]:
    row = {"scheme": "vn", "seller_tax_id": SELLER, "template": "1", "series": "C22TAA",
           "invoice_code": None, "expected_first": 1, "first": 2, "last": 9, "issued": 5,
           "missing_count": 4, "missing": [[1, 1], [4, 5], [8, 8]], "cancelled_count": 1,
           "cancelled": [[3, 3]]}
    return row | over


async def test_json_report_per_series_with_totals(cli: Client) -> None:
    await load(cli)
    resp = await cli.get(URL, params={"seller_tax_id": SELLER, "year": "2022"})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["scope"] == {"seller_tax_id": SELLER, "template": None, "series": None,
                             "invoice_code": None, "from": "2022-01-01", "to": "2022-12-31"}
    assert body["sequences"] == [holed(), holed(series="C22TBB", first=1, last=1, issued=1,
                                               missing_count=0, missing=[],
                                               cancelled_count=0, cancelled=[])]
    assert body["totals"] == {"sequences": 2, "issued": 6, "missing": 4, "cancelled": 1}
    narrowed = await (await cli.get(URL, params={"seller_tax_id": SELLER, "template": "1",
                                                 "series": "C22TAA"})).json()
    assert narrowed["sequences"] == [holed()]
    empty = await (await cli.get(URL, params={"seller_tax_id": SELLER, "year": "2023"})).json()
    assert empty["sequences"] == []
    assert empty["totals"] == {"sequences": 0, "issued": 0, "missing": 0, "cancelled": 0}


async def test_csv_report_has_a_row_per_range(cli: Client) -> None:
    await load(cli)
    resp = await cli.get(URL, params={"seller_tax_id": SELLER, "series": "C22TAA",
                                      "from": "2022-01-01", "to": "2022-12-31",
                                      "format": "csv"})
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["row"], r["first"], r["last"], r["count"]) for r in rows] == [
        ("sequence", "2", "9", "4"), ("missing", "1", "1", "1"), ("missing", "4", "5", "2"),
        ("missing", "8", "8", "1"), ("cancelled", "3", "3", "1")]
    assert {(r["seller_tax_id"], r["template"], r["series"]) for r in rows} == {
        (SELLER, "1", "C22TAA")}


async def test_chinese_codes_report_between_first_and_last_seen(cli: Client) -> None:
    await load(cli)
    body = await (await cli.get(URL, params={"seller_tax_id": "91110108MA01ABCD1X"})).json()
    assert body["sequences"] == [{
        "scheme": "cn", "seller_tax_id": "91110108MA01ABCD1X", "template": None,
        "series": None, "invoice_code": "013002200211", "expected_first": 11, "first": 11,
        "last": 14, "issued": 2, "missing_count": 2, "missing": [[12, 13]],
        "cancelled_count": 0, "cancelled": []}]


async def test_audit_keys_report_only_on_their_scope(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    auditor = await make_key("audit", [SELLER], name="auditor")
    mine = await cli.get(URL, params={"seller_tax_id": SELLER}, headers=bearer(auditor))
    assert mine.status == 200
    assert (await mine.json())["totals"]["missing"] == 4
    other = await cli.get(URL, params={"seller_tax_id": SELLER_2}, headers=bearer(auditor))
    assert other.status == 403
    assert (await other.json())["error"]["code"] == "not_in_scope"
    verifier = await make_key("verify", [SELLER])
    denied = await cli.get(URL, params={"seller_tax_id": SELLER}, headers=bearer(verifier))
    assert denied.status == 403
    trail = await (await cli.get("/api/v1/admin/audit",
                                 params={"action": "report.missing"})).json()
    assert [(e["key_id"], e["target"], e["outcome"]) for e in trail["entries"]] == [
        (auditor.split("_")[1], SELLER, "2 sequences, 4 missing, 1 cancelled")]


async def test_bad_report_queries_are_400(cli: Client) -> None:
    for params in ({}, {"seller_tax_id": "12"}, {"seller_tax_id": SELLER, "nope": "1"},
                   {"seller_tax_id": SELLER, "year": "2022", "from": "2022-01-01"},
                   {"seller_tax_id": SELLER, "year": "22"},
                   {"seller_tax_id": SELLER, "from": "2022-13-01"},
                   {"seller_tax_id": SELLER, "from": "2022-02-01", "to": "2022-01-01"},
                   {"seller_tax_id": SELLER, "series": "X"},
                   {"seller_tax_id": SELLER, "template": "0"},
                   {"seller_tax_id": SELLER, "code": "123"},
                   {"seller_tax_id": SELLER, "code": "013002200211", "template": "1"},
                   {"seller_tax_id": SELLER, "format": "xml"}):
        resp = await cli.get(URL, params=params)
        assert resp.status == 400, params
        assert (await resp.json())["error"]["code"] == "invalid_report_query"
    twice = await cli.get(f"{URL}?seller_tax_id={SELLER}&seller_tax_id={SELLER}")
    assert twice.status == 400


def test_cli_writes_the_same_report(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    packaged = tmp_path / "package.json"
    packaged.write_text(json.dumps(package(PACKAGE_INVOICES, [cancel(3)])))
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(packaged), "--data-dir", data_dir],
                             catch_exceptions=False)
    assert ingested.exit_code == 0, ingested.output
    out = tmp_path / "missing.json"
    result = runner.invoke(app, ["report", "missing", "--seller", SELLER, "--year", "2022",
                                 "--format", "json", "--out", str(out), "--data-dir",
                                 data_dir], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 sequences, 6 numbers issued: 4 missing, 1 cancelled" in result.output
    body = json.loads(out.read_text())
    assert body["sequences"][0] == holed()
    as_csv = runner.invoke(app, ["report", "missing", "--seller", SELLER, "--series", "C22TAA",
                                 "--data-dir", data_dir], catch_exceptions=False)
    assert as_csv.exit_code == 0
    assert "vn,0100109106,1,C22TAA,,sequence,2,9,4,5,1" in as_csv.stdout
    bad = runner.invoke(app, ["report", "missing", "--seller", SELLER, "--format", "xml",
                              "--data-dir", data_dir])
    assert bad.exit_code == 2
