"""`GET /api/v1/reports/missing` and `invoice-verify report missing`, through intake."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from fallback.gaps import Gap, GapLedger, GapReason, GapRequest, open_gap_ledger
from fallback.outages import OutageLog, System, open_outage_log
from indexer.keys import VnKey
from tests.conftest import Client, KeyMaker, bearer
from tests.factories import (
    SELLER,
    SELLER_2,
    authority_code,
    cancel,
    cn_digital,
    cn_invoice,
    package,
    vn_invoice,
)
from verify.cli.main import app
from verify.keys import GAPS, OUTAGES
from verify.settings import Settings

URL = "/api/v1/reports/missing"
VN_TZ = timezone(timedelta(hours=7))
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
    assert body["totals"] == {"sequences": 2, "issued": 6, "missing": 4, "cancelled": 1,
                              "gaps_open": 0, "gaps_missing": 0}
    assert body["outage_gaps"] == []
    narrowed = await (await cli.get(URL, params={"seller_tax_id": SELLER, "template": "1",
                                                 "series": "C22TAA"})).json()
    assert narrowed["sequences"] == [holed()]
    empty = await (await cli.get(URL, params={"seller_tax_id": SELLER, "year": "2023"})).json()
    assert empty["sequences"] == []
    assert empty["totals"] == {"sequences": 0, "issued": 0, "missing": 0, "cancelled": 0,
                               "gaps_open": 0, "gaps_missing": 0}


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
        (auditor.split("_")[1], SELLER,
         "2 sequences, 4 missing, 1 cancelled, 0 gaps open, 0 gaps missing")]


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
        expected = "unknown_parameter" if "nope" in params else "invalid_report_query"
        assert (await resp.json())["error"]["code"] == expected
    twice = await cli.get(f"{URL}?seller_tax_id={SELLER}&seller_tax_id={SELLER}")
    assert twice.status == 400
    for year in ("²²²²", "٢٠٢٢", "２０２２"):  # int() failed (a 500) or read them
        resp = await cli.get(URL, params={"seller_tax_id": SELLER, "year": year})
        assert resp.status == 400, year
        assert (await resp.json())["error"]["details"]["parameter"] == "year"


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


# ---- outage gaps ---------------------------------------------------------------------------

WINDOW_START = datetime(2022, 5, 15, 2, tzinfo=VN_TZ)
WINDOW_END = datetime(2022, 5, 15, 4, tzinfo=VN_TZ)


def gap_request(number: int, *, issued_on: date | None, seller: str | None = SELLER,
                series: str = "C22TAA", reason: GapReason = GapReason.UPSTREAM_OUTAGE,
                outage_id: int | None = None, lookup_key: str | None = None) -> GapRequest:
    key = VnKey(seller or SELLER, "1", series, number)
    return GapRequest(lookup_key=lookup_key or key.doc_id, scheme="vn", key=key.as_dict(),
                      seller_tax_id=seller, reason=reason, requester="k_asker",
                      callback_url="https://erp.example/cb", issued_on=issued_on,
                      outage_id=outage_id)


async def record_gaps(ledger: GapLedger, outages: OutageLog) -> dict[str, Gap]:
    """Gaps of every kind the report must take or leave; names say which."""
    window = await outages.declare(System.UPSTREAM, WINDOW_START, WINDOW_END, "GDT adds nodes",
                                   "admin")
    rec = {
        "open": await ledger.record(gap_request(4, issued_on=date(2022, 5, 15),
                                                outage_id=window.id)),
        "missing": await ledger.record(gap_request(8, issued_on=date(2022, 5, 16),
                                                   outage_id=window.id)),
        "found": await ledger.record(gap_request(5, issued_on=date(2022, 5, 15),
                                                 outage_id=window.id)),
        "other_seller": await ledger.record(gap_request(4, issued_on=date(2022, 5, 15),
                                                        seller=SELLER_2)),
        "unknown_seller": await ledger.record(gap_request(
            1, issued_on=date(2022, 5, 15), seller=None,
            lookup_key=f"authority_code:{authority_code(1)}")),
        "next_year": await ledger.record(gap_request(10, issued_on=date(2023, 1, 2))),
        "lag": await ledger.record(gap_request(11, issued_on=date(2022, 12, 31),
                                               reason=GapReason.INTAKE_LAG)),
        "undated": await ledger.record(gap_request(2, issued_on=None, series="C22TBB",
                                                   reason=GapReason.PRIMARY_DOWN)),
    }
    for name, resolution in (("missing", "missing"), ("found", "found")):
        resolved = await ledger.resolve(rec[name].id, resolution)
        assert resolved is not None
        rec[name] = resolved
    return rec


WINDOW = {"system": "upstream", "kind": "declared", "start": "2022-05-14T19:00:00Z",
          "end": "2022-05-14T21:00:00Z", "reason": "GDT adds nodes", "declared_by": "admin"}


def reported(gap: Gap, window: dict[str, Any] | None) -> dict[str, Any]:
    """What the report must show of a gap: its own fields, no requesters, its window."""
    shown = gap.as_dict()
    assert shown["requester_count"] == 1
    expected = {name: shown[name] for name in (
        "id", "lookup_key", "scheme", "key", "seller_tax_id", "issued_on", "reason", "status",
        "resolution", "first_seen", "last_seen", "resolved_at", "count", "outage_id")}
    return {**expected, "outage": window}


async def test_json_report_lists_open_and_missing_outage_gaps_with_windows(
        cli: Client) -> None:
    await load(cli)
    app = cli.server.app
    assert app is not None
    gaps = await record_gaps(app[GAPS], app[OUTAGES])
    body = await (await cli.get(URL, params={"seller_tax_id": SELLER, "year": "2022"})).json()
    window = {"id": gaps["open"].outage_id, **WINDOW,
              "created_at": body["outage_gaps"][0]["outage"]["created_at"]}
    assert body["outage_gaps"] == [reported(gaps["open"], window),
                                   reported(gaps["missing"], window),
                                   reported(gaps["lag"], None)]
    assert [(g["key"]["number"], g["status"], g["resolution"], g["issued_on"])
            for g in body["outage_gaps"]] == [(4, "open", None, "2022-05-15"),
                                              (8, "resolved", "missing", "2022-05-16"),
                                              (11, "open", None, "2022-12-31")]
    assert body["totals"] == {"sequences": 2, "issued": 6, "missing": 4, "cancelled": 1,
                              "gaps_open": 2, "gaps_missing": 1}
    assert body["sequences"][0] == holed()  # the numbering part is unchanged


async def test_outage_gaps_follow_the_scope(cli: Client) -> None:
    await load(cli)
    app = cli.server.app
    assert app is not None
    gaps = await record_gaps(app[GAPS], app[OUTAGES])

    async def ids(**params: str) -> list[str]:
        body = await (await cli.get(URL, params={"seller_tax_id": SELLER, **params})).json()
        return [g["id"] for g in body["outage_gaps"]]

    # Unbounded: the undated gap counts on the day it was asked (today), so it is in too.
    # The report lists gaps in id order; ids are time-ordered to the millisecond only, so
    # gaps recorded within one millisecond keep no recording order (sorted, not as recorded).
    assert await ids() == sorted(gaps[n].id for n in ("open", "missing", "next_year", "lag",
                                                      "undated"))
    assert await ids(series="C22TBB") == [gaps["undated"].id]
    assert await ids(template="2") == []
    assert await ids(**{"from": "2022-05-16", "to": "2022-12-30"}) == [gaps["missing"].id]
    assert await ids(year="2023") == [gaps["next_year"].id]
    assert await ids(code="013002200211") == []  # Chinese sequences only
    other = await (await cli.get(URL, params={"seller_tax_id": SELLER_2})).json()
    assert [g["id"] for g in other["outage_gaps"]] == [gaps["other_seller"].id]


async def test_csv_report_has_a_row_per_outage_gap(cli: Client) -> None:
    await load(cli)
    app = cli.server.app
    assert app is not None
    gaps = await record_gaps(app[GAPS], app[OUTAGES])
    resp = await cli.get(URL, params={"seller_tax_id": SELLER, "series": "C22TAA",
                                      "year": "2022", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["row"] for r in rows] == ["sequence", "missing", "missing", "missing",
                                        "cancelled", "gap", "gap", "gap"]
    gap_rows = rows[5:]
    window_id = str(gaps["open"].outage_id)
    assert [{k: r[k] for k in ("scheme", "seller_tax_id", "template", "series", "number",
                               "gap_id", "issued_on", "reason", "status", "resolution",
                               "asked", "outage_id", "outage_system", "outage_kind",
                               "outage_start", "outage_end")} for r in gap_rows] == [
        {"scheme": "vn", "seller_tax_id": SELLER, "template": "1", "series": "C22TAA",
         "number": "4", "gap_id": gaps["open"].id, "issued_on": "2022-05-15",
         "reason": "upstream_outage", "status": "open", "resolution": "", "asked": "1",
         "outage_id": window_id, "outage_system": "upstream", "outage_kind": "declared",
         "outage_start": "2022-05-14T19:00:00Z", "outage_end": "2022-05-14T21:00:00Z"},
        {"scheme": "vn", "seller_tax_id": SELLER, "template": "1", "series": "C22TAA",
         "number": "8", "gap_id": gaps["missing"].id, "issued_on": "2022-05-16",
         "reason": "upstream_outage", "status": "resolved", "resolution": "missing",
         "asked": "1", "outage_id": window_id, "outage_system": "upstream",
         "outage_kind": "declared", "outage_start": "2022-05-14T19:00:00Z",
         "outage_end": "2022-05-14T21:00:00Z"},
        {"scheme": "vn", "seller_tax_id": SELLER, "template": "1", "series": "C22TAA",
         "number": "11", "gap_id": gaps["lag"].id, "issued_on": "2022-12-31",
         "reason": "intake_lag", "status": "open", "resolution": "", "asked": "1",
         "outage_id": "", "outage_system": "", "outage_kind": "", "outage_start": "",
         "outage_end": ""}]
    assert all(r["first_seen"].endswith("Z") and r["last_seen"] for r in gap_rows)
    assert rows[0]["gap_id"] == ""  # sequence rows leave the gap columns empty


async def test_gaps_of_unscoped_sellers_stay_out_of_an_auditors_report(
        cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    app = cli.server.app
    assert app is not None
    gaps = await record_gaps(app[GAPS], app[OUTAGES])
    auditor = await make_key("audit", [SELLER_2])
    mine = await cli.get(URL, params={"seller_tax_id": SELLER_2}, headers=bearer(auditor))
    body = await mine.json()
    assert [g["id"] for g in body["outage_gaps"]] == [gaps["other_seller"].id]
    assert "requesters" not in body["outage_gaps"][0]


def test_cli_report_lists_the_data_directorys_outage_gaps(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(data_dir)})

    async def record() -> dict[str, Gap]:
        data_dir.mkdir(parents=True)
        async with open_gap_ledger(settings.gaps_path) as ledger, \
                open_outage_log(settings.outages_path) as outages:
            return await record_gaps(ledger, outages)

    gaps = asyncio.run(record())
    result = CliRunner().invoke(app, ["report", "missing", "--seller", SELLER, "--year",
                                      "2022", "--data-dir", str(data_dir)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "outage gaps: 2 open, 1 missing" in result.output
    rows = [r for r in csv.DictReader(io.StringIO(result.stdout)) if r["row"] == "gap"]
    assert [(r["gap_id"], r["status"], r["resolution"]) for r in rows] == [
        (gaps["open"].id, "open", ""), (gaps["missing"].id, "resolved", "missing"),
        (gaps["lag"].id, "open", "")]
