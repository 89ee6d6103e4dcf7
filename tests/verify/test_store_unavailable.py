"""A store that cannot answer now is a 503 `primary_unavailable`, answered once by the error
middleware for every route (`verify/http/middlewares.py`), never a 500.

The fault is real: another process holds the WAL-index locks of the invoice store's file, as
a process running WAL recovery does (`bench/sqlite_fault.py wal-lock`). A held write lock
(`BEGIN EXCLUSIVE`) would not do: in WAL mode it stops writers, and readers go on reading
(the missing-invoice report, for one, still answers 200 under it). SQLite retries the held
lock for about 10 s inside the library before the read fails as `SqliteUnavailable`."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.factories import SELLER, package, vn_invoice
from verify.settings import Settings

REPO = Path(__file__).parents[2]
DOC_ID = f"vn:{SELLER}:1:C22TAA:1"


async def _load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
    assert resp.status == 200, await resp.text()


async def test_a_held_write_lock_does_not_stop_reads(cli: Client, settings: Settings) -> None:
    await _load(cli)
    holder = sqlite3.connect(settings.sqlite_path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        report = await cli.get("/api/v1/reports/missing", params={"seller_tax_id": SELLER})
        assert report.status == 200, await report.text()
        lookup = await cli.get(f"/api/v1/invoices/{DOC_ID}/qr.png")
        assert lookup.status == 200, await lookup.text()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.chaos
async def test_a_locked_store_file_is_a_503_not_a_500(cli: Client, settings: Settings) -> None:
    await _load(cli)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sqlite_fault", "wal-lock", str(settings.sqlite_path), "60",
        cwd=REPO, stdout=asyncio.subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"held"
        resp = await cli.get(f"/api/v1/invoices/{DOC_ID}/original.xml")
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"]["code"] == "primary_unavailable"
    finally:
        holder.terminate()
        await holder.wait()
