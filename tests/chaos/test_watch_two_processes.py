"""Chaos: watches in the distributed deployment (docs/watches.md#deployments). Two real
service processes (`tests.chaos.service`), each with its own data directory, on one
osmem-server: a watch made through A fires when the cancellation arrives through B, as one
event in the feed of either and one callback to a real receiver on 127.0.0.1, however many
delivery rounds of the two processes follow; the same package posted again through A, and
A killed and started again (its sweep at start), add nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from osmem_server import OsmemServer

from tests.chaos.load import doc_id
from tests.chaos.polling import poll
from tests.chaos.procs import Process, free_port
from tests.chaos.test_two_processes import WITHIN, service, status
from tests.conftest import bearer
from tests.factories import cancel, package, vn_invoice
from tests.verify.test_distributed import namespace  # noqa: F401 (a namespace of its own)
from tests.verify.test_intake_journal import callbacks  # noqa: F401 (the callback receiver)

pytestmark = pytest.mark.chaos
API = "/api/v1"
WATCHED = 860_001


async def feed(http: aiohttp.ClientSession, url: str, token: str) -> list[dict[str, Any]]:
    async with http.get(f"{url}{API}/watches/events", headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()
        events: list[dict[str, Any]] = (await resp.json())["events"]
        return events


async def test_a_watch_made_on_one_process_fires_for_a_change_through_another(
    osmem: OsmemServer,
    namespace: str,  # noqa: F811 (the fixture)
    callbacks: tuple[str, list[dict[str, Any]]],  # noqa: F811 (the fixture)
    processes: list[Process],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    base, received = callbacks
    a = service("a", tmp_path, osmem, namespace)
    processes.append(a)
    a.start()
    await a.ready(http)
    admin = bearer((tmp_path / "data-a" / "admin.key").read_text().strip())
    async with http.get(f"{a.url}{API}/admin/keys", headers=admin) as resp:
        assert resp.status == 200  # sends the bootstrap admin key to the cluster first
    b = service("b", tmp_path, osmem, namespace)
    processes.append(b)
    b.start()
    await b.ready(http)
    async with http.post(f"{a.url}{API}/admin/keys", headers=admin,
                         json={"role": "verify", "name": "watcher"}) as resp:
        made = await resp.json()
        assert resp.status == 201, made
    token = made["token"]

    async def works_on_b() -> bool:
        return await status(http, b.url, token) == 200

    await poll(works_on_b, WITHIN, "A's new key to work on B", detail=b.tail)

    async with http.post(f"{a.url}{API}/packages", headers=admin,
                         json=package([vn_invoice(WATCHED)])) as resp:
        assert resp.status == 200, await resp.text()
    async with http.post(f"{a.url}{API}/watches", headers=bearer(token), json={
            "keys": [doc_id(WATCHED)], "callback_url": f"{base}/ok"}) as resp:
        body = await resp.json()
        assert resp.status == 201, body
    (watch,) = body["watches"]
    async with http.get(f"{b.url}{API}/watches", headers=bearer(token)) as resp:
        assert [w["id"] for w in (await resp.json())["watches"]] == [watch["id"]]

    cancelling = package([], [cancel(WATCHED, notice_id="04SS-2026-0860")])
    async with http.post(f"{b.url}{API}/packages", headers=admin, json=cancelling) as resp:
        assert resp.status == 200, await resp.text()

    async def sent_seen_on(url: str) -> bool:
        events = await feed(http, url, token)
        return bool(events) and events[0]["callback"]["state"] == "sent"

    for url in (a.url, b.url):
        await poll(lambda url=url: sent_seen_on(url), WITHIN, "the event, its callback sent",
                   detail=b.tail)
    async with http.post(f"{a.url}{API}/packages", headers=admin, json=cancelling) as resp:
        assert resp.status == 200, await resp.text()  # a replay: no new change
    a.kill()  # and a start again: its sweep finds the change recorded already
    a.move_to(free_port())
    a.start()
    await a.ready(http)

    async def settled() -> bool:  # both processes' delivery rounds have looked again
        feeds = [await feed(http, url, token) for url in (a.url, b.url)]
        return all(f[0]["callback"]["attempts"] == 1 for f in feeds)

    await poll(settled, WITHIN, "the feeds to agree")
    for url in (a.url, b.url):
        events = await feed(http, url, token)
        assert [(e["watch_id"], e["invoice_id"], e["status"], e["by"]["notice_id"])
                for e in events] == [(watch["id"], doc_id(WATCHED), "cancelled",
                                      "04SS-2026-0860")]
    assert [(c["event"], c["watch_id"]) for c in received] == [("invoice.changed",
                                                                 watch["id"])]
