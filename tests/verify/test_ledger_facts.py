"""Ledger lines answer as a lookup with the same fields by the same key does (issue 17): the
verification window, the Chinese second factor and the Vietnamese seller's status; and with
`receipt=true` each line carries the receipt of exactly that line (issue 21), degraded and
unconfirmed lines saying so. Through the real app: each line is compared with the lookup."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import BUYER, CN_CODE_E, SELLER, cn_invoice, package, vn_invoice
from tests.ledgers import csv_bytes
from tests.verify.test_intake_journal import maintenance

URL = "/api/v1/reports/ledger"
LOOKUP = "/api/v1/invoices/lookup"
MAY = {"buyer_tax_id": BUYER, "from": "2022-05-01", "to": "2022-05-31"}
HEADER = ["seller_tax_id", "template", "series", "invoice_code", "number", "issued_on",
          "amount", "total_amount"]
VN_OK = ["1000000", "1100000"]
CN_NUMBER = "81532753"
#: A miss of a year ago: inside the window, and long enough ago to be no upstream delay.
YEAR_AGO = datetime.now(timezone(timedelta(hours=7))).date() - timedelta(days=400)
#: What a lookup may say beyond the bare verdict, compared between a line and its lookup.
FACTS = ("status", "reason", "invoice", "mismatches", "window_years", "window_start",
         "withheld", "missing_factor", "required_factors", "warnings")


def vn_line(number: int, series: str = "C22TAA", issued_on: str = "2022-05-15") -> list[str]:
    return [SELLER, "1", series, "", str(number), issued_on, *VN_OK]


#: A valid invoice, a miss issued before the verification window, a miss inside it,
#: a Chinese 普票 made out to another buyer (the ledger gives no check code: the platform's
#: factor for the type), and a line that is no invoice.
LINES = [
    vn_line(1),
    vn_line(5, "C21TAA", "2021-01-15"),
    vn_line(50, f"C{YEAR_AGO.year % 100:02d}TAA", YEAR_AGO.isoformat()),
    ["", "", "", CN_CODE_E, CN_NUMBER, "2023-03-23", "205.30", "217.62"],
    vn_line(0),
]


async def load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1), cn_invoice(CN_NUMBER)]))
    assert (await resp.json())["result"] == "accepted"
    # the seller not at its registered address since 2024: today's status warns
    for status, since in (("00", "2020-01-01"), ("06", "2024-01-01")):
        record = {"tax_id": SELLER, "name": "Công ty Cổ phần Thử nghiệm", "status": status,
                  "status_since": since}
        resp = await cli.post("/api/v1/admin/registry", json={"taxpayers": [record]})
        assert resp.status == 200, await resp.text()


async def ledger(cli: Client, token: str | None = None, **params: str) -> dict[str, Any]:
    resp = await cli.post(URL, params={**MAY, **params}, data=csv_bytes(HEADER, LINES),
                          headers={"Content-Type": "text/csv",
                                   **(bearer(token) if token else {})})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def lookup_params(line: list[str]) -> dict[str, str]:
    """The lookup a ledger line stands for: its key and values, and the ledger's buyer."""
    seller, template, series, code, number, issued_on, amount, total = line
    key = ({"seller_tax_id": seller, "template": template, "series": series, "number": number}
           if series else {"code": code, "number": number})
    return {**key, "issued_on": issued_on, "amount": amount, "total_amount": total,
            "buyer_tax_id": BUYER}


async def lookup(cli: Client, line: list[str], token: str | None = None) -> dict[str, Any]:
    resp = await cli.get(LOOKUP, params=lookup_params(line),
                         headers=bearer(token) if token else None)
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


def facts(answer: dict[str, Any]) -> dict[str, Any]:
    return {name: answer.get(name) for name in FACTS}


async def test_ledger_lines_give_the_lookups_facts(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    body = await ledger(cli)
    lines = body["lines"]
    assert [ln["status"] for ln in lines] == [
        "valid", "outside_window", "not_found", "mismatch", "error"]
    for line, row in zip(lines[:4], LINES, strict=False):
        assert facts(line) == facts(await lookup(cli, row)), line["row"]
    valid, old = lines[0], lines[1]
    assert valid["invoice"]["seller_status"] == {"known": True, "on_issue_date": "00",
                                                "today": "06"}
    assert valid["warnings"] == [
        {"code": "seller_not_at_registered_address", "when": "today", "status": "06"}]
    assert (old["reason"], old["window_years"]) == ("older_than_verification_window", 5)
    assert body["totals"]["outside_window"] == 1
    # an admin sees the Chinese invoice whole; an audit key of the ledger's buyer is no party
    # to it (made out to another buyer), so, without the check code, its status only
    assert "withheld" not in lines[3]
    auditor = await make_key("audit", [BUYER])
    theirs = (await ledger(cli, auditor))["lines"]
    cn_line = theirs[3]
    assert (cn_line["withheld"], cn_line["missing_factor"]) == (
        ["amounts", "parties"], "check_code_last6")
    assert cn_line["invoice"]["total_amount"] is None
    assert facts(cn_line) == facts(await lookup(cli, LINES[3], auditor))
    assert facts(theirs[1]) == facts(await lookup(cli, LINES[1], auditor))


def claims_of(receipt: str) -> dict[str, Any]:
    payload = receipt.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


async def checked(cli: Client, receipt: str) -> dict[str, Any]:
    resp = await cli.post("/api/v1/receipts/verify", json={"receipt": receipt})
    assert resp.status == 200
    verdict: dict[str, Any] = await resp.json()
    assert verdict["valid"] is True, verdict
    return verdict


def same_as_line(claims: dict[str, Any], line: dict[str, Any]) -> None:
    for name in ("status", "scheme", "key", "mismatches", "source", "degraded", "as_of",
                 "gap_id"):
        assert claims[name] == line[name], name
    assert claims["invoice"] == (line["invoice"] or {}).get("id")
    assert claims.get("reason") == line["reason"]


async def test_each_line_carries_its_receipt(cli: Client) -> None:
    await load(cli)
    lines = (await ledger(cli, receipt="true"))["lines"]
    for line in lines[:4]:
        verdict = await checked(cli, line["receipt"])
        same_as_line(verdict["claims"], line)
    assert "receipt" not in lines[4]  # an error line is no answer
    assert verdict["claims"]["status"] == "mismatch"  # the ledger's own comparison too
    assert claims_of(lines[1]["receipt"])["record_sha256"] is None
    assert claims_of(lines[0]["receipt"])["record_sha256"] is not None
    entries = (await (await cli.get("/api/v1/admin/audit",
                                    params={"action": "receipt.sign"})).json())["entries"]
    assert sorted(e["outcome"] for e in entries) == sorted(
        claims_of(ln["receipt"])["jti"] for ln in lines[:4])
    plain = (await ledger(cli))["lines"]
    assert all("receipt" not in ln for ln in plain)


async def test_degraded_and_unconfirmed_lines_say_so_in_their_receipts(cli: Client) -> None:
    await load(cli)
    await maintenance(cli, 3600)  # the primary's: lines come from the replica
    lines = (await ledger(cli, receipt="true"))["lines"]
    valid, miss = lines[0], lines[2]
    assert (valid["status"], valid["degraded"]) == ("valid", True)
    assert (miss["status"], miss["reason"]) == ("unconfirmed", "primary_down")
    for line in (valid, miss):
        verdict = await checked(cli, line["receipt"])
        same_as_line(verdict["claims"], line)
    assert (await checked(cli, valid["receipt"]))["statement"].startswith(
        "Answered valid, DEGRADED: from the replica copy")
    unconfirmed = await checked(cli, miss["receipt"])
    assert unconfirmed["statement"].startswith("UNCONFIRMED")
    assert unconfirmed["claims"]["gap_id"] == miss["gap_id"] is not None
    assert unconfirmed["claims"]["record_sha256"] is None


async def test_receipts_come_with_the_json_report_only(cli: Client) -> None:
    for params, code in (({"receipt": "true", "format": "csv"}, "invalid_parameter"),
                         ({"receipt": "maybe"}, "invalid_parameter"),
                         ({"receipt": ["true", "true"]}, "repeated_parameter")):
        query = [*MAY.items(), *((k, v) for k, vs in params.items()
                                 for v in (vs if isinstance(vs, list) else [vs]))]
        resp = await cli.post(URL, params=query, data=csv_bytes(HEADER, LINES),
                              headers={"Content-Type": "text/csv"})
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["code"] == code
