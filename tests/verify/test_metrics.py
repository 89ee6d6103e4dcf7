"""`GET /metrics` read with prometheus-client's parser, and `/readyz` during maintenance,
through the real embedded app (SQLite primary, in-memory replica)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Client
from tests.factories import package, vn_invoice, vn_key
from tests.metrics_text import samples

LOOKUP = "/api/v1/invoices/lookup"
LOOKUP_200 = {"method": "GET", "route": LOOKUP, "status": "200"}


def _params(number: int) -> dict[str, str]:
    return {k: str(v) for k, v in vn_key(number).items()}


async def _exposition(cli: Client) -> str:
    resp = await cli.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


async def _declare_maintenance(cli: Client) -> dict[str, Any]:
    now = datetime.now(UTC)
    resp = await cli.post("/api/v1/outages", json={
        "system": "primary", "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(), "reason": "upgrade"})
    assert resp.status == 201, await resp.text()
    window: dict[str, Any] = await resp.json()
    return window


async def test_every_family_has_help_and_type(cli: Client) -> None:
    text = await _exposition(cli)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "invoice_http_requests": "counter",
        "invoice_http_request_duration_seconds": "histogram",
        "invoice_answers": "counter",
        "invoice_gaps_recorded": "counter",
        "invoice_probe_failures": "counter",
        "invoice_breaker_state": "gauge",
        "invoice_breaker_failures": "counter",
        "invoice_breaker_rejected": "counter",
        "invoice_breaker_opened": "counter",
        "invoice_maintenance_active": "gauge",
        "invoice_journal_entries": "gauge",
        "invoice_gaps": "gauge",
        "invoice_reconcile_running": "gauge",
        "invoice_reconcile_runs": "counter",
        "invoice_reconcile_last_run": "gauge",
        "invoice_reconcile_last_run_finished_timestamp_seconds": "gauge",
    }
    assert {name: families[name].type for name in expected} == expected
    assert all(families[name].documentation for name in expected)
    for name in expected:
        assert f"# HELP {name}" in text


async def test_requests_are_counted_by_route_template_and_status(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
    assert resp.status == 200
    for number in (1, 1, 2):
        assert (await cli.get(LOOKUP, params=_params(number))).status == 200
    assert (await cli.get("/api/v1/gaps/G-nothing-1")).status == 404
    assert (await cli.get("/api/v1/gaps/G-nothing-2")).status == 404
    assert (await cli.get("/no/such/route")).status == 404
    values = samples(await _exposition(cli))
    count = 'invoice_http_requests_total{method="GET",route="%s",status="%s"}'
    assert values[count % (LOOKUP, 200)] == 3
    assert values[count % ("/api/v1/gaps/{id}", 404)] == 2  # the template, not the id
    assert values[count % ("unmatched", 404)] == 1
    assert values['invoice_http_requests_total{method="POST",route="/api/v1/packages",'
                  'status="200"}'] == 1
    histogram = "invoice_http_request_duration_seconds"
    labels = f'method="GET",route="{LOOKUP}",status="200"'
    assert values[f"{histogram}_count{{{labels}}}"] == 3
    assert values[f'{histogram}_bucket{{le="+Inf",{labels}}}'] == 3
    assert values[f"{histogram}_sum{{{labels}}}"] > 0
    assert not any("G-nothing" in series for series in values)
    assert values['invoice_answers_total{source="primary",status="valid"}'] == 2
    assert values['invoice_answers_total{source="primary",status="not_found"}'] == 1


async def test_state_gauges_read_the_journal_the_gaps_and_the_breakers(cli: Client) -> None:
    await _declare_maintenance(cli)
    miss = await (await cli.get(LOOKUP, params=_params(9))).json()
    assert miss["status"] == "unconfirmed"
    values = samples(await _exposition(cli))
    assert values["invoice_maintenance_active"] == 1
    assert values['invoice_gaps{status="open"}'] == 1
    assert values['invoice_gaps{status="resolved"}'] == 0
    assert values['invoice_gaps_recorded_total{reason="primary_down"}'] == 1
    assert values['invoice_journal_entries{state="pending"}'] == 0
    assert values['invoice_journal_entries{state="quarantined"}'] == 0
    for system in ("primary", "replica"):
        assert values[f'invoice_breaker_state{{state="closed",system="{system}"}}'] == 1
        assert values[f'invoice_breaker_state{{state="open",system="{system}"}}'] == 0
    assert values["invoice_reconcile_running"] == 0


async def test_reconcile_runs_are_counted(cli: Client) -> None:
    before = samples(await _exposition(cli))["invoice_reconcile_runs_total"]
    resp = await cli.post("/api/v1/reconcile")
    assert resp.status == 202
    for _ in range(200):
        status = await (await cli.get("/api/v1/reconcile/status")).json()
        if not status["running"]:
            break
    values = samples(await _exposition(cli))
    assert values["invoice_reconcile_runs_total"] == before + 1
    assert values["invoice_reconcile_last_run_finished_timestamp_seconds"] > 0
    assert values['invoice_reconcile_last_run{what="journal_applied"}'] == 0


async def test_readyz_in_maintenance_is_ready_with_the_primary_in_maintenance(
        cli: Client) -> None:
    ok = await (await cli.get("/readyz")).json()
    assert ok["checks"]["primary"]["state"] == "ok"
    window = await _declare_maintenance(cli)
    resp = await cli.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready"
    primary = body["checks"]["primary"]
    assert (primary["state"], primary["ok"]) == ("maintenance", False)
    assert primary["window"]["id"] == window["id"]
    assert primary["window"]["end"] == window["end"]
    assert body["checks"]["replica"]["state"] == "ok"
