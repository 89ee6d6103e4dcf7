"""`invoice-verify reconcile` while the primary is in a declared maintenance window: it says
so, with the window's end, and that nothing was applied (it used to say "the primary
failed")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fallback.outages import System
from indexer.journal import open_intake_journal
from tests.conftest import Client
from tests.factories import package, vn_invoice
from verify.cli.main import app as cli_app
from verify.keys import OUTAGES
from verify.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600"}
    )


async def test_reconcile_in_maintenance_names_the_window_and_applies_nothing(
    cli: Client, settings: Settings
) -> None:
    app = cli.app
    assert app is not None
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    window = await app[OUTAGES].declare(
        System.PRIMARY, end - timedelta(hours=3), end, "index upgrade", "tests"
    )
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
    assert resp.status == 202  # queued in the journal
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["reconcile", "--data-dir", str(settings.data_dir)]
    )
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert (
        f"the primary is unavailable: it is in a declared maintenance window until "
        f"{end.isoformat().replace('+00:00', 'Z')} (window {window.id}, "
        "'index upgrade'); nothing was applied. Waiting for a run after the window: "
        "journal entries 1, open gaps 0"
    ) in said
    assert "failed" not in said
    async with open_intake_journal(settings.journal_path) as journal:
        assert (await journal.counts())["pending"] == 1
