"""The missing-invoice report on a SQLite store file another process has locked is a 503
`primary_unavailable` (the store's `SqliteUnavailable`, mapped by the error middleware), not
a 500: its numbering read (`indexer/store/numbering_reports.py`) runs on a connection of its
own, and raised SQLite's bare errors.

The lock is real: another process holds the WAL-index locks of the file, as WAL recovery
does (`bench/sqlite_fault.py wal-lock`); SQLite retries for about 10 s before giving up."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.factories import SELLER, package, vn_invoice
from verify.settings import Settings

REPO = Path(__file__).parents[2]


@pytest.mark.chaos
async def test_the_missing_report_on_a_locked_store_file_is_a_503(
    cli: Client, settings: Settings
) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1), vn_invoice(3)]))
    assert resp.status == 200, await resp.text()
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.sqlite_fault",
        "wal-lock",
        str(settings.sqlite_path),
        "60",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"held"
        report = await cli.get("/api/v1/reports/missing", params={"seller_tax_id": SELLER})
        assert report.status == 503, await report.text()
        assert (await report.json())["error"]["code"] == "primary_unavailable"
    finally:
        holder.terminate()
        await holder.wait()
    report = await cli.get("/api/v1/reports/missing", params={"seller_tax_id": SELLER})
    assert report.status == 200, await report.text()  # the lock gone, the report answers
