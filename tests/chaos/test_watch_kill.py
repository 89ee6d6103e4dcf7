"""Chaos: the service is SIGKILLed between a cancellation's commit and the recording of its
watch event (docs/watches.md); after the restart the event is there, exactly once.

`invoice-verify serve` itself (the embedded default). The point between the two is held
open by the real thing blocked: the test takes the write lock of `watches.sqlite3` (a
`BEGIN IMMEDIATE` of its own), so the commit of the cancelling package goes through, and is
answered, while the background fan-out that follows waits for the lock (the answer does not
wait for the fan-out); once answered the process group is SIGKILLed, and the lock released.
Before the sweep the event was lost for good; now the restarted service finds it (its sweep
at start), once, and a second restart adds no other.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from indexer.model import Lifecycle
from indexer.store.sqlite import open_sqlite_store
from tests.chaos.conftest import service_env
from tests.chaos.load import API, doc_id
from tests.chaos.polling import poll
from tests.chaos.procs import Process, embedded_service, free_port
from tests.factories import cancel, package, vn_invoice
from verify.settings import Settings

pytestmark = pytest.mark.chaos
DOC_1 = doc_id(1)


async def feed(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    async with http.get(f"{base}{API}/watches/events") as resp:
        assert resp.status == 200, await resp.text()
        events: list[dict[str, Any]] = (await resp.json())["events"]
        return events


async def cancelled_in_primary(sqlite_path: Path) -> bool:
    async with open_sqlite_store(sqlite_path) as store:
        invoice = await store.get_invoice(DOC_1)
    return invoice is not None and invoice.lifecycle is Lifecycle.CANCELLED


async def test_a_kill_between_the_commit_and_its_event_loses_no_event(
        processes: list[Process], http: aiohttp.ClientSession, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(data_dir)})
    service = embedded_service(data_dir, tmp_path / "service.log", service_env(data_dir),
                               free_port())
    processes.append(service)
    service.start()
    await service.ready(http)
    async with http.post(f"{service.url}{API}/packages", json=package([vn_invoice(1)])) as r:
        assert r.status == 200, await r.text()
    async with http.post(f"{service.url}{API}/watches", json={"keys": [DOC_1]}) as r:
        assert r.status == 201, await r.text()
        (watch,) = (await r.json())["watches"]

    lock = sqlite3.connect(settings.watches_path, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the fan-out after the commit waits on this
        # the package is answered while its fan-out waits: the commit does not wait for it
        async with asyncio.timeout(60), http.post(
                f"{service.url}{API}/packages",
                json=package([], [cancel(1, notice_id="04SS-2026-0001")])) as r:
            assert r.status == 200, await r.text()
        # answered before the fan-out gave up on the lock (its busy timeout, then this line
        # logged): a commit that waited for its fan-out was answered only after it
        assert "watch events could not be recorded" not in service.log_path.read_text(
            encoding="utf-8", errors="replace"), service.tail()
        assert await cancelled_in_primary(settings.sqlite_path)
        service.kill()
        # nothing recorded: the killed process never got the lock
        assert lock.execute("SELECT COUNT(*) FROM watch_events").fetchone() == (0,)
    finally:
        lock.execute("ROLLBACK") if lock.in_transaction else None
        lock.close()

    for restart in range(2):  # the second start's sweep finds it recorded: no other event
        service.move_to(free_port())
        service.start()
        await service.ready(http)

        async def told() -> bool:
            return len(await feed(http, service.url)) > 0

        await poll(told, 30, "the lost event recorded after the restart", detail=service.tail)
        events = await feed(http, service.url)
        assert [(e["watch_id"], e["invoice_id"], e["status"], e["by"]["notice_id"])
                for e in events] == [(watch["id"], DOC_1, "cancelled", "04SS-2026-0001")], (
            restart, events)
        if restart == 0:
            service.stop()
