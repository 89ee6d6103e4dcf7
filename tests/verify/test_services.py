"""The one service graph (`verify.services`): the CLI answers as the HTTP endpoints do for the
same rows, outages included; the outage horizon is the service's everywhere; one pair of
Elasticsearch clients per process; a reconcile started over HTTP is cancelled at shutdown
before the journal closes under it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from typer.testing import CliRunner

from indexer.store.elasticsearch import ClientOptions
from indexer.submission import BodyFormat, read_submission
from tests.conftest import Client, EsTarget, bearer
from tests.factories import BUYER, package, vn_invoice, vn_key
from tests.indexer.store.conftest import fresh_prefix
from tests.ledgers import csv_bytes
from tests.verify.test_distributed import REDIS, namespace  # noqa: F401 (fixture)
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.cli.main import app as cli_app
from verify.keys import RECONCILE_RUNS, RESILIENCE
from verify.services import open_services
from verify.settings import Settings

Factory = Callable[..., Awaitable[Client]]
BATCH = "/api/v1/verify/batch"
LEDGER = "/api/v1/reports/ledger"
PERIOD = {"buyer_tax_id": BUYER, "from": "2022-05-01", "to": "2022-05-31"}
LEDGER_HEADER = ["seller_tax_id", "template", "series", "number", "issued_on", "amount",
                 "tax_amount", "total_amount"]
runner = CliRunner()


def cli_run(*args: str) -> Any:
    return runner.invoke(cli_app, list(args), catch_exceptions=False)


async def _client(aiohttp_client: Factory, settings: Settings, **kwargs: Any) -> Client:
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN, name="tests")
    return await aiohttp_client(create_app(settings, **kwargs), headers=bearer(token))


async def _declare(cli: Client, system: str, start: datetime, end: datetime) -> None:
    resp = await cli.post("/api/v1/outages", json={
        "system": system, "start": start.isoformat(), "end": end.isoformat(),
        "reason": "test"})
    assert resp.status == 201, await resp.text()


async def _http_batch(cli: Client, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    resp = await cli.post(BATCH, json=rows)
    assert resp.status == 200, await resp.text()
    return [json.loads(line) for line in (await resp.text()).splitlines()]


async def _cli_batch(tmp_path: Path, settings: Settings,
                     rows: list[dict[str, str]]) -> list[dict[str, str]]:
    batch, out = tmp_path / "batch.json", tmp_path / "answers.csv"
    batch.write_text(json.dumps(rows))
    # The CLI runs its own event loop (asyncio.run): a thread of its own.
    result = await asyncio.to_thread(cli_run, "verify", "--batch", str(batch), "--out",
                                     str(out), "--data-dir", str(settings.data_dir))
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))


def _http_rows(results: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(str(r["row"]), r.get("status", ""), r.get("source", ""),
             str(r.get("degraded", "")).lower()) for r in results]


def _cli_rows(rows: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    return [(r["row"], r["status"], r["source"], r["degraded"].lower()) for r in rows]


async def test_cli_batch_and_ledger_answer_as_the_endpoints_in_maintenance(
        aiohttp_client: Factory, tmp_path: Path, namespace: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Invoice 1 is in the primary and (written through) in the shared Redis replica; 2 is
    posted during the maintenance window (journaled: pending); 3 nobody holds."""
    monkeypatch.setenv("INVOICE_REDIS_URL", REDIS)  # the CLI reads the environment
    monkeypatch.setenv("INVOICE_REDIS_NAMESPACE", namespace)
    settings = Settings.from_env().with_overrides(data_dir=tmp_path / "data")
    cli = await _client(aiohttp_client, settings)
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)], package_id="P-1"))
    assert (await resp.json())["result"] == "accepted"
    now = datetime.now(UTC)
    await _declare(cli, "primary", now - timedelta(minutes=1), now + timedelta(hours=1))
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(2)], package_id="P-2"))
    assert resp.status == 202, await resp.text()
    rows = [vn_key(1), vn_key(2), vn_key(3), {"number": "x"}]

    http = _http_rows(await _http_batch(cli, rows))
    assert http == [("1", "valid", "replica", "true"), ("2", "valid", "replica", "true"),
                    ("3", "unconfirmed", "replica", "true"), ("4", "", "", "")]
    assert _cli_rows(await _cli_batch(tmp_path, settings, rows)) == http

    ledger = csv_bytes(LEDGER_HEADER, [
        [r["seller_tax_id"], r["template"], r["series"], r["number"], "2022-05-15",
         "1000000", "100000", "1100000"] for r in rows[:3]])
    resp = await cli.post(LEDGER, params=PERIOD, data=ledger,
                          headers={"Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    over_http = await resp.json()
    path = tmp_path / "ledger.csv"
    path.write_bytes(ledger)
    result = await asyncio.to_thread(
        cli_run, "report", "ledger", str(path), "--buyer-tax-id", BUYER, "--from",
        "2022-05-01", "--to", "2022-05-31", "--format", "json", "--data-dir",
        str(settings.data_dir))
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.stdout)

    def verdicts(body: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(ln["row"], ln["status"], ln.get("reason"), ln.get("source"),
                 ln.get("degraded")) for ln in body["lines"]]

    assert verdicts(from_cli) == verdicts(over_http)
    assert [s for _, s, *_ in verdicts(over_http)] == ["valid", "valid", "unconfirmed"]


async def test_cli_batch_keeps_upstream_windows_for_the_intake_lag(
        aiohttp_client: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 72-hour intake lag, an upstream window that ended 60 hours ago still makes a
    miss unconfirmed: over HTTP and from the CLI alike (the outage log keeps ended windows
    the intake lag and a day, wherever it is opened)."""
    monkeypatch.setenv("INVOICE_INTAKE_LAG_HOURS", "72")  # the CLI reads the environment
    settings = Settings.from_env().with_overrides(data_dir=tmp_path / "data")
    cli = await _client(aiohttp_client, settings)
    now = datetime.now(UTC)
    await _declare(cli, "upstream", now - timedelta(hours=70), now - timedelta(hours=60))
    rows = [vn_key(3)]
    http = await _http_batch(cli, rows)
    assert (http[0]["status"], http[0]["reason"]) == ("unconfirmed", "upstream_outage")
    answers = await _cli_batch(tmp_path, settings, rows)
    assert _cli_rows(answers) == _http_rows(http)
    async with open_services(settings) as services:
        assert services.outages.horizon == timedelta(hours=72 + 24)


async def test_one_pair_of_elasticsearch_clients_per_process(
        aiohttp_client: Factory, tmp_path: Path, es_target: EsTarget) -> None:
    built: list[ClientOptions] = []

    def counting(url: str, options: ClientOptions) -> AsyncElasticsearch:
        built.append(options)
        return es_target.client_factory(url, options)

    settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                                  "INVOICE_ES_URL": es_target.url,
                                  "INVOICE_ES_INDEX_PREFIX": fresh_prefix()})
    cli = await _client(aiohttp_client, settings, es_client_factory=counting)
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
    assert (await resp.json())["result"] == "accepted"
    assert (await cli.get("/api/v1/invoices/lookup", params=vn_key(1))).status == 200
    assert len(built) == 2  # invoices, registry and originals share them
    assert len(set(built)) == 2


async def _journal_backlog(settings: Settings, packages: int, size: int) -> None:
    """`packages` packages journaled while the primary's breaker is open (another process's
    view of the same data directory, as the service's would be during an outage)."""
    async with open_services(settings) as services:
        for _ in range(settings.fallback.breaker_failures):
            await services.primary.failed("test: primary down")
        for i in range(packages):
            body = json.dumps(package([vn_invoice(n) for n in range(i * size + 1,
                                                                    (i + 1) * size + 1)],
                                      package_id=f"BACKLOG-{i}")).encode()
            sub = read_submission(body, BodyFormat.JSON, max_items=10_000)
            outcome = await services.journaled.submit(sub, {})
            assert outcome.queued, outcome.notice


async def test_shutdown_cancels_a_reconcile_started_over_http(
        aiohttp_client: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                                  "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600"})
    cli = await _client(aiohttp_client, settings)
    await _journal_backlog(settings, packages=300, size=20)
    caplog.set_level(logging.WARNING)
    resp = await cli.post("/api/v1/reconcile")
    assert resp.status == 202, await resp.text()
    status = await resp.json()
    assert (status["started"], status["running"]) == (True, True)
    await cli.close()  # the app shuts down while the run drains the journal
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "reconcile-now"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    async with open_services(settings) as services:
        counts = await services.journal.counts()
        assert counts["pending"] + counts["applied"] == 300, counts
        assert counts.get("quarantined", 0) == 0, counts
        # every applied entry's invoices are in the primary, and only theirs
        assert await services.store.count_invoices() == counts["applied"] * 20


async def test_memos_belong_to_each_app(aiohttp_client: Factory, tmp_path: Path) -> None:
    """The authority-code hints, the decoded replica documents and the invoice summaries
    are each app's own (they were module-level, shared by every app of the process), and so
    are the reconcile runs started over HTTP."""
    apps = [create_app(Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / name),
                                          "INVOICE_INSECURE_LOCAL": "1"}))
            for name in ("a", "b")]
    for application in apps:
        await aiohttp_client(application)
    one, other = (application[RESILIENCE] for application in apps)
    assert one.code_owners is not other.code_owners
    assert one.replica.decoded is not other.replica.decoded
    assert one.summaries is not other.summaries
    assert apps[0][RECONCILE_RUNS] is not apps[1][RECONCILE_RUNS]
