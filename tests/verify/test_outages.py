"""Outage windows, degraded answers and the gap ledger through the real embedded app
(SQLite primary, in-memory replica): maintenance, upstream outages, the intake lag, the
gaps and outages endpoints with their tenancy and bad input, and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fallback.outages import System, open_outage_log
from tests.conftest import Client, KeyMaker, bearer
from tests.factories import SELLER, SELLER_2, authority_code, package, vn_invoice, vn_key
from tests.metrics_text import samples
from verify.cli.main import app as cli_app
from verify.keys import OUTAGES
from verify.settings import Settings

LOOKUP = "/api/v1/invoices/lookup"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


def params(number: int, **extra: str) -> dict[str, str]:
    return {**{k: str(v) for k, v in vn_key(number).items()}, **extra}


async def ingest(cli: Client, *numbers: int) -> None:
    resp = await cli.post("/api/v1/packages",
                          json=package([vn_invoice(n) for n in numbers]))
    assert (await resp.json())["result"] == "accepted"


async def declare(cli: Client, system: str, start: datetime, end: datetime,
                  reason: str = "test") -> dict[str, Any]:
    resp = await cli.post("/api/v1/outages", json={
        "system": system, "start": iso(start), "end": iso(end), "reason": reason})
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def lookup(cli: Client, query: dict[str, str], token: str | None = None,
                 ) -> dict[str, Any]:
    resp = await cli.get(LOOKUP, params=query, headers=bearer(token) if token else None)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def metric(cli: Client, line_start: str) -> float:
    return samples(await (await cli.get("/metrics")).text())[line_start]


async def test_maintenance_answers_from_the_replica_without_trying_the_primary(
        cli: Client) -> None:
    await ingest(cli, 1)
    window = await declare(cli, "primary", now() - timedelta(minutes=1),
                           now() + timedelta(hours=1), "add nodes")
    found = await lookup(cli, params(1, total_amount="1100000"))
    assert (found["status"], found["source"], found["degraded"]) == ("valid", "replica", True)
    assert found["invoice"]["id"] == "vn:0100109106:1:C22TAA:1"
    by_code = await lookup(cli, {"authority_code": authority_code(1)})
    assert (by_code["status"], by_code["source"]) == ("valid", "replica")
    missing = await lookup(cli, params(2))
    assert (missing["status"], missing["reason"], missing["degraded"]) == (
        "unconfirmed", "primary_down", True)
    gap = await (await cli.get(f"/api/v1/gaps/{missing['gap_id']}")).json()
    assert (gap["reason"], gap["outage_id"], gap["status"]) == (
        "primary_down", window["id"], "open")
    assert await metric(cli, 'invoice_breaker_failures_total{system="primary"}') == 0
    assert await metric(cli, "invoice_maintenance_active") == 1
    assert await metric(cli, 'invoice_answers_total{source="replica",status="valid"}') == 2


async def test_a_future_maintenance_window_changes_nothing_yet(cli: Client) -> None:
    await ingest(cli, 1)
    await declare(cli, "primary", now() + timedelta(hours=1), now() + timedelta(hours=2))
    answer = await lookup(cli, params(1))
    assert (answer["source"], answer["degraded"]) == ("primary", False)
    assert (await lookup(cli, params(2)))["status"] == "not_found"


async def test_upstream_outage_makes_a_miss_unconfirmed(cli: Client) -> None:
    await ingest(cli, 1)
    window = await declare(cli, "upstream", now() - timedelta(hours=1),
                           now() + timedelta(hours=1), "GDT maintenance")
    missing = await lookup(cli, params(5))
    assert (missing["status"], missing["reason"], missing["source"], missing["degraded"]) == (
        "unconfirmed", "upstream_outage", "primary", False)
    assert missing["gap_id"]
    gap = await (await cli.get(f"/api/v1/gaps/{missing['gap_id']}")).json()
    assert gap["outage_id"] == window["id"]
    long_before = await lookup(cli, params(5, issued_on="2022-05-15"))
    assert long_before["status"] == "not_found", "issued long before the window"
    assert long_before["gap_id"] is None
    found = await lookup(cli, params(1))
    assert found["status"] == "valid", "what we hold is still confirmed"


async def test_a_miss_issued_within_the_intake_lag_is_unconfirmed(cli: Client) -> None:
    today = now().date().isoformat()
    answer = await lookup(cli, params(9, issued_on=today))
    assert (answer["status"], answer["reason"]) == ("unconfirmed", "intake_lag")
    assert (await lookup(cli, params(9, issued_on="2022-05-15")))["status"] == "not_found"
    assert (await lookup(cli, params(9)))["status"] == "not_found"


async def test_same_key_again_is_the_same_gap(cli: Client) -> None:
    await declare(cli, "upstream", now() - timedelta(hours=1), now() + timedelta(hours=1))
    first = await lookup(cli, params(5))
    second = await lookup(cli, params(5, callback_url="https://erp.example/hooks/gap"))
    assert first["gap_id"] == second["gap_id"]
    gap = await (await cli.get(f"/api/v1/gaps/{first['gap_id']}")).json()
    assert gap["count"] == 2
    (requester,) = gap["requesters"]
    assert requester["callback_url"] == "https://erp.example/hooks/gap"
    assert gap["key"] == vn_key(5)
    assert gap["seller_tax_id"] == SELLER


@pytest.mark.parametrize("url", ["ftp://erp.example/x", "not a url", "https://",
                                 "javascript:alert(1)", "https://x.example/" + "a" * 2100])
async def test_bad_callback_urls_are_400(cli: Client, url: str) -> None:
    resp = await cli.get(LOOKUP, params=params(1, callback_url=url))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["details"] == {"parameter": "callback_url"}


async def test_a_repeated_callback_url_is_400(cli: Client) -> None:
    resp = await cli.get(LOOKUP + "?callback_url=https://a.example&callback_url=https://b."
                         "example&authority_code=" + authority_code(1))
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "repeated_parameter"


async def test_gaps_tenancy(cli: Client, make_key: KeyMaker) -> None:
    await declare(cli, "upstream", now() - timedelta(hours=1), now() + timedelta(hours=1))
    verify_a = await make_key("verify", name="scanner a")
    verify_b = await make_key("verify", name="scanner b")
    auditor = await make_key("audit", [SELLER])
    other_auditor = await make_key("audit", [SELLER_2])
    by_key = await lookup(cli, params(5), verify_a)
    by_code = await lookup(cli, {"authority_code": authority_code(77)}, verify_b)

    async def ids(token: str) -> list[str]:
        resp = await cli.get("/api/v1/gaps", headers=bearer(token))
        assert resp.status == 200
        return [g["id"] for g in (await resp.json())["gaps"]]

    assert await ids(verify_a) == [by_key["gap_id"]]
    assert await ids(verify_b) == [by_code["gap_id"]]
    assert await ids(auditor) == [by_key["gap_id"]], "the seller is in scope"
    assert await ids(other_auditor) == []
    admin = await (await cli.get("/api/v1/gaps")).json()
    assert {g["id"] for g in admin["gaps"]} == {by_key["gap_id"], by_code["gap_id"]}
    hidden = await cli.get(f"/api/v1/gaps/{by_code['gap_id']}", headers=bearer(auditor))
    assert hidden.status == 404, "unknown seller: only admins and its requesters"
    seen = await (await cli.get(f"/api/v1/gaps/{by_key['gap_id']}",
                                headers=bearer(auditor))).json()
    assert seen["requesters"] == []
    assert seen["requester_count"] == 1
    intake = await make_key("intake", ["0101300842"])
    assert (await cli.get("/api/v1/gaps", headers=bearer(intake))).status == 403


async def test_gaps_list_filters_and_pages(cli: Client) -> None:
    await declare(cli, "upstream", now() - timedelta(hours=1), now() + timedelta(hours=1))
    made = [(await lookup(cli, params(n)))["gap_id"] for n in (11, 12, 13)]
    first = await (await cli.get("/api/v1/gaps", params={"limit": "2"})).json()
    assert [g["id"] for g in first["gaps"]] == made[:2]
    rest = await (await cli.get("/api/v1/gaps", params={
        "after": first["next_after"], "status": "open", "reason": "upstream_outage",
        "since": iso(now() - timedelta(hours=1))})).json()
    assert [g["id"] for g in rest["gaps"]] == made[2:]
    assert rest["next_after"] is None
    none = await (await cli.get("/api/v1/gaps", params={"status": "resolved"})).json()
    assert none["gaps"] == []


@pytest.mark.parametrize("query", [{"status": "closed"}, {"reason": "bored"},
                                   {"since": "yesterday"}, {"since": "2026-11-22T00:00:00"},
                                   {"limit": "0"}, {"limit": "1001"}, {"colour": "red"}])
async def test_bad_gap_queries_are_400(cli: Client, query: dict[str, str]) -> None:
    resp = await cli.get("/api/v1/gaps", params=query)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] in {"invalid_parameter", "unknown_parameter"}


async def test_unknown_gap_is_404(cli: Client) -> None:
    resp = await cli.get("/api/v1/gaps/gap_nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "gap_not_found"


async def test_outages_endpoints_roles_and_audit(cli: Client, make_key: KeyMaker) -> None:
    auditor = await make_key("audit", [SELLER])
    verifier = await make_key("verify")
    window = await declare(cli, "primary", now() + timedelta(hours=1),
                           now() + timedelta(hours=2), "add nodes")
    assert (window["system"], window["kind"], window["reason"]) == (
        "primary", "declared", "add nodes")
    listed = await (await cli.get("/api/v1/outages", headers=bearer(auditor))).json()
    assert [w["id"] for w in listed["outages"]] == [window["id"]]
    assert (await cli.get("/api/v1/outages", headers=bearer(verifier))).status == 403
    refused = await cli.post("/api/v1/outages", headers=bearer(auditor), json={
        "system": "primary", "start": iso(now()), "end": iso(now() + timedelta(hours=1))})
    assert refused.status == 403
    trail = await (await cli.get("/api/v1/admin/audit",
                                 params={"action": "outage.declare"})).json()
    (entry,) = trail["entries"]
    assert entry["target"] == f"outage:{window['id']}"
    filtered = await (await cli.get("/api/v1/outages", params={
        "system": "upstream", "kind": "declared"})).json()
    assert filtered["outages"] == []


@pytest.mark.parametrize("body", [
    {"system": "primary", "start": "2026-11-22T03:00:00Z", "end": "2026-11-22T02:00:00Z"},
    {"system": "primary", "start": "2026-11-22T02:00:00", "end": "2026-11-22T03:00:00"},
    {"system": "replica", "start": "2026-11-22T02:00:00Z", "end": "2026-11-22T03:00:00Z"},
    {"system": "moon", "start": "2026-11-22T02:00:00Z", "end": "2026-11-22T03:00:00Z"},
    {"system": "primary", "start": "soon", "end": "2026-11-22T03:00:00Z"},
    {"system": "primary", "end": "2026-11-22T03:00:00Z"},
    {"system": "primary", "start": "2026-11-22T02:00:00Z", "end": "2026-11-22T03:00:00Z",
     "reason": 5},
    {"system": "primary", "start": "2026-11-22T02:00:00Z", "end": "2026-11-22T03:00:00Z",
     "colour": "red"},
])
async def test_bad_declarations_are_422(cli: Client, body: dict[str, Any]) -> None:
    resp = await cli.post("/api/v1/outages", json=body)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_outage"


async def test_declarations_need_json(cli: Client) -> None:
    assert (await cli.post("/api/v1/outages", data=b"system=primary")).status == 415
    bad = await cli.post("/api/v1/outages", data=b"{", headers={
        "Content-Type": "application/json"})
    assert bad.status == 400
    bad_list = await cli.get("/api/v1/outages", params={"after": "x"})
    assert bad_list.status == 400


async def test_metrics_need_no_key_and_name_both_breakers(cli: Client) -> None:
    resp = await cli.get("/metrics", headers={"Authorization": ""})
    assert resp.status == 200
    values = samples(await resp.text())
    assert values['invoice_breaker_state{state="closed",system="primary"}'] == 1
    assert values['invoice_breaker_state{state="closed",system="replica"}'] == 1


def test_cli_declares_and_lists_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        ) -> None:
    monkeypatch.setenv("INVOICE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    declared = runner.invoke(cli_app, [
        "outage", "declare", "--from", "2026-11-22T02:00:00+07:00",
        "--to", "2026-11-22T04:00:00+07:00", "--system", "upstream",
        "--reason", "GDT adds nodes"], catch_exceptions=False)
    assert declared.exit_code == 0, declared.output
    listed = runner.invoke(cli_app, ["outage", "list"], catch_exceptions=False)
    assert listed.exit_code == 0
    (window,) = json.loads(listed.stdout)
    assert (window["system"], window["start"], window["end"], window["reason"]) == (
        "upstream", "2026-11-21T19:00:00Z", "2026-11-21T21:00:00Z", "GDT adds nodes")
    bad = runner.invoke(cli_app, ["outage", "declare", "--from", "2026-11-22T04:00:00Z",
                                  "--to", "2026-11-22T02:00:00Z", "--system", "primary"])
    assert bad.exit_code == 2
    naive = runner.invoke(cli_app, ["outage", "declare", "--from", "tomorrow",
                                    "--to", "2026-11-22T02:00:00Z", "--system", "primary"])
    assert naive.exit_code == 2


async def test_a_window_declared_from_the_cli_reaches_a_running_service(
        cli: Client, settings: Settings) -> None:
    async with open_outage_log(settings.outages_path) as log:
        await log.declare(System.UPSTREAM, now() - timedelta(hours=1),
                          now() + timedelta(hours=1), "from the CLI", "cli")
    app = cli.server.app
    assert app is not None
    await app[OUTAGES].refresh()  # what the health monitor does every probe interval
    assert (await lookup(cli, params(5)))["status"] == "unconfirmed"
