"""Every journal of a data directory is drained (docs/deployment.md#several-workers-on-one-host):
`invoice-verify reconcile` (and so the compose reconciler, its `--loop`) drains each journal
file whose slot no live process holds, not only `journal.sqlite3`, and leaves a slot a live
process holds to that process; `invoice-verify journal list` reads them all.

Three journals get a package queued during a maintenance window (202): slots 1 and 2 are
free (their workers died), slot 3 is held by a real process (a live worker's claim). The CLI
runs in-process on the same files after the window.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from fallback.outages import System
from indexer.journal import open_intake_journal
from tests.chaos.polling import poll
from tests.conftest import Client
from tests.factories import package, vn_invoice
from verify.app import create_app
from verify.cli.main import app as cli_app
from verify.cli.workers import journal_name
from verify.keys import OUTAGES
from verify.settings import Settings

HOLD = """
import sys
from pathlib import Path
from verify.cli.workers import try_claim
claim = try_claim(Path(sys.argv[1]), int(sys.argv[2]))
print("held" if claim else "taken", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_INSECURE_LOCAL": "1",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600"})


@pytest.fixture
def holder(settings: Settings) -> Iterator[subprocess.Popen[str]]:
    """A live process holding slot 3 (as a worker does for its life)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(settings.data_dir), "3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def cli(*args: str) -> Awaitable[Result]:
    return asyncio.to_thread(CliRunner().invoke, cli_app, list(args))


async def pending(settings: Settings, slot: int) -> int:
    async with open_intake_journal(settings.data_dir / journal_name(slot)) as journal:
        return (await journal.counts())["pending"]


async def test_reconcile_drains_every_unheld_journal_and_leaves_a_held_one(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
        holder: subprocess.Popen[str]) -> None:
    end = datetime.now(UTC) + timedelta(seconds=2)
    for slot in (1, 2, 3):  # each process's journal gets one package, queued by the window
        app = create_app(replace(settings, journal_file=journal_name(slot)))
        client = await aiohttp_client(app)
        if slot == 1:
            await app[OUTAGES].declare(System.PRIMARY, end - timedelta(minutes=1), end,
                                       "upgrade", "tests")
        resp = await client.post("/api/v1/packages",
                                 json=package([vn_invoice(slot)], package_id=f"PKG-SLOT-{slot}"))
        assert resp.status == 202, await resp.text()
        await client.close()

    listed = await cli("journal", "list", "--state", "pending", "--data-dir",
                       str(settings.data_dir))
    lines = [json.loads(line) for line in listed.output.splitlines()]
    assert {(e["journal"], e["package_id"]) for e in lines} == {
        (journal_name(s), f"PKG-SLOT-{s}") for s in (1, 2, 3)}

    await poll(lambda: datetime.now(UTC) >= end, 30, "the window's end")
    done = await cli("reconcile", "--data-dir", str(settings.data_dir))
    assert done.exit_code == 0, done.output
    assert [await pending(settings, s) for s in (1, 2, 3)] == [0, 0, 1]
    assert "journal: 2 of 2 entries applied" in " ".join(done.output.split())

    holder.kill()  # the worker of slot 3 dies: its journal is the next run's to drain
    holder.wait()
    again = await cli("reconcile", "--data-dir", str(settings.data_dir))
    assert again.exit_code == 0, again.output
    assert [await pending(settings, s) for s in (1, 2, 3)] == [0, 0, 0]
