"""The `invoice-verify` commands, run in-process against real files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from indexer.store.registry import open_sqlite_registry
from tests.conftest import Client
from tests.factories import package, vn_invoice
from verify.app import create_app
from verify.cli.main import app
from verify.demo import build_demo, example_queries
from verify.settings import Settings

runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ingest_files_reports_each_and_is_idempotent(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(package([vn_invoice(1), vn_invoice(2, series="C22ZAA")],
                                       package_id="PKG-FILE-1")))
    data = str(tmp_path / "data")
    result = run("ingest", str(good), "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert "PKG-FILE-1 partially_accepted: 1 accepted, 1 rejected" in result.output
    assert "vn.series.invalid" in result.output
    again = run("ingest", str(good), "--data-dir", data)
    assert "already ingested" in again.output


def test_ingest_bad_files_fail_without_stopping_the_others(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    mismatch = tmp_path / "mismatch.json"
    mismatch.write_text(json.dumps(package([vn_invoice(1)], declared=2)))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(package([vn_invoice(3)])))
    result = run("ingest", str(broken), str(tmp_path / "missing.json"), str(mismatch), str(good),
                 "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 1
    assert "package.malformed_json" in result.output
    assert "file_unreadable" in result.output
    assert "package.count_mismatch" in result.output
    assert "1 accepted, 0 rejected" in result.output


def test_rules_listing_marks_unconfirmed_rules() -> None:
    result = run("rules", "--json")
    assert result.exit_code == 0
    rows = {row["rule"]: row for row in json.loads(result.output)}
    assert rows["vn.series.letter_f"]["confirmed"] is False
    assert rows["vn.tax_id.invalid"]["severity"] == "error"


def test_bad_configuration_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INVOICE_PORT", "not-a-port")
    result = run("demo", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "INVOICE_PORT" in result.output


@pytest.mark.slow
async def test_demo_examples_answer_as_labelled(tmp_path: Path, aiohttp_client: Any) -> None:
    data = tmp_path / "demo"
    # The CLI runs its own event loop (asyncio.run); give it a thread of its own.
    result = await asyncio.to_thread(run, "demo", "--data-dir", str(data), "--per-series", "200")
    assert result.exit_code == 0, result.output
    assert "0 rejected" in result.output
    assert ('curl -s -H "Authorization: Bearer $INVOICE_KEY" '
            "'http://127.0.0.1:8080/api/v1/invoices/lookup?") in result.output
    cli: Client = await aiohttp_client(create_app(Settings(data_dir=data, insecure_local=True)))
    async with open_sqlite_registry(data / "registry.sqlite3") as registry:
        assert await registry.counts() == {"taxpayers": 5, "providers": 1}
    stranger = package([vn_invoice(1, seller_tax_id="0102671977")])
    notice = await (await cli.post("/api/v1/packages", json=stranger)).json()
    assert notice["items"][0]["errors"][0]["rule"] == "registry.seller.unknown"
    for title, query in example_queries(build_demo(per_series=200)):
        resp = await cli.get("/api/v1/invoices/lookup", params=query)
        assert resp.status == 200
        answer = await resp.json()
        assert title.startswith(answer["status"]), (title, answer)
