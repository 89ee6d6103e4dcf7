"""Chaos (issue 15, "Done when"): poison packages of every kind, then 200 good packages from
other senders, on each backend; a restart changes nothing.

The service runs as a process: `invoice-verify serve` (the embedded default, SQLite primary)
or the same app on osmem-server (Elasticsearch primary). First, one package of each kind the
issue found wedging intake: an amount of `1e999999`, an invoice number of 4,301 digits, a
currency of " ", an amount of `1E+999999999`, a declared_count of 2**64; and one package whose
apply raises inside the store every time (the primary holds a record of its id that this
release cannot read: a receipt time as epoch milliseconds, as another tool could write it),
and a second such package once the journal has drained (the direct intake path).
They are posted during a short maintenance window of the primary, so they wait in the
journal and the reconciler meets them, with the first good packages queued behind them.
Then 200 packages of other senders, posted concurrently.

Counted: no 5xx; the five hostile packages are answered with their own violations (final:
rejected items, or the envelope refused); the unreadable one is quarantined with a final
`package.unprocessable` notice; every one of the 200 is in the primary (polled, no timed
assertion) and the journal holds nothing pending; after the service process is stopped and
started again, the same: journal counts, the quarantined entry, the primary's invoice count,
the notices a re-post gets.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from indexer.keys import VnKey
from indexer.store import InvoiceStore
from indexer.store.elasticsearch import open_elasticsearch_store
from indexer.store.sqlite import open_sqlite_store
from tests.chaos.conftest import service_env
from tests.chaos.load import API, REQUEST_TIMEOUT, Api
from tests.chaos.polling import poll
from tests.chaos.procs import Process, ServiceProcess, embedded_service, free_port, runner_service
from tests.factories import SELLER_2, package, vn_invoice
from tests.indexer.store.plain_json import plain_json_client
from tests.metrics_text import samples
from verify.settings import Settings

pytestmark = pytest.mark.chaos

GOOD = 200
SENDERS = ["0102671977", "0312345678", "0100109106"]
UNREADABLE = "POISON-UNREADABLE"
UNREADABLE_2 = "POISON-UNREADABLE-2"
EPOCH_MILLIS = 1_700_000_000_000


def hostile_packages() -> list[dict[str, Any]]:
    bodies = []
    for n, over in enumerate([{"amount_before_tax": "1e999999"}, {"number": "9" * 4301},
                              {"currency": " "}, {"total_amount": "1E+999999999"}], 1):
        invoice = vn_invoice(n)
        invoice.update(over)
        bodies.append(package([invoice], package_id=f"POISON-{n}"))
    bodies.append(package([vn_invoice(5)], package_id="POISON-5", declared=2**64))
    return bodies


def good_package(n: int) -> dict[str, Any]:
    body = package([vn_invoice(n, seller_tax_id=SELLER_2)], package_id=f"GOOD-{n:04d}")
    body["sender"] = SENDERS[n % len(SENDERS)]
    return body


def good_doc_id(n: int) -> str:
    return VnKey(SELLER_2, "1", "C22TAA", n).doc_id


class Backend:
    """Where the primary is, how to open it from the test, how to plant the unreadable
    package record in it."""

    def __init__(self, name: str, data_dir: Path, es_url: str | None) -> None:
        self.name = name
        self.data_dir = data_dir
        self.es_url = es_url

    @asynccontextmanager
    async def store(self) -> AsyncIterator[InvoiceStore]:
        if self.es_url is not None:
            async with open_elasticsearch_store(self.es_url,
                                                client_factory=plain_json_client) as store:
                yield store
        else:
            path = Settings.from_env({"INVOICE_DATA_DIR": str(self.data_dir)}).sqlite_path
            async with open_sqlite_store(path) as sqlite_store:
                yield sqlite_store

    async def plant_unreadable(self, http: aiohttp.ClientSession, package_id: str) -> None:
        if self.es_url is not None:
            url = f"{self.es_url}/invoices-packages/_doc/{package_id}?refresh=true"
            doc = {"package_id": package_id, "sender": "0101300842", "digest": "x",
                   "received_at": EPOCH_MILLIS, "notice": {}}
            async with http.put(url, json=doc) as resp:
                assert resp.status in (200, 201), await resp.text()
            return
        path = Settings.from_env({"INVOICE_DATA_DIR": str(self.data_dir)}).sqlite_path
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO packages (package_id, sender, digest, received_at,"
                         " notice) VALUES (?, '0101300842', 'x', ?, '{}')",
                         (package_id, str(EPOCH_MILLIS)))


@pytest.fixture(params=["sqlite", "elasticsearch"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path / "data", None)
    osmem = request.getfixturevalue("osmem")
    return Backend("elasticsearch", tmp_path / "data", osmem.url)


def start_service(backend: Backend, tmp_path: Path) -> ServiceProcess:
    extra = {"INVOICE_RECONCILE_INTERVAL_SECONDS": "1"}
    if backend.es_url is None:
        env = service_env(backend.data_dir, **extra)
        return embedded_service(backend.data_dir, tmp_path / "service.log", env, free_port())
    env = service_env(backend.data_dir, INVOICE_ES_URL=backend.es_url, **extra)
    return runner_service(tmp_path / "service.log", env, free_port())


async def post_good(api: Api, numbers: range, statuses: list[int]) -> None:
    """Post the good packages `numbers`, 8 at a time."""
    queue = asyncio.Queue[int]()
    for n in numbers:
        queue.put_nowait(n)

    async def sender() -> None:
        while not queue.empty():
            code, notice, _ = await api.post(good_package(queue.get_nowait()))
            assert code in (200, 202), notice
            statuses.append(code)

    await asyncio.gather(*(sender() for _ in range(8)))


async def until_in_primary(backend: Backend, numbers: range) -> None:
    expected = {good_doc_id(n) for n in numbers}
    async with backend.store() as store:
        held: set[str] = set()

        async def all_in_primary() -> bool:
            nonlocal held
            held = set(await store.get_invoices(expected))
            return held == expected

        await poll(all_in_primary, 60, f"{len(expected)} good packages to reach the primary",
                   interval=0.2, detail=lambda: f"{len(held)} of {len(expected)} there")


async def journal(api: Api, state: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await api.get_json(f"{API}/journal", state=state,
                                                        limit="1000"))["entries"]
    return entries


async def snapshot(api: Api, backend: Backend) -> dict[str, Any]:
    """What must not change across a restart."""
    async with backend.store() as store:
        indexed = await store.count_invoices()
    status = await api.reconcile_status()
    quarantined = [(e["seq"], e["package_id"], e["attempts"])
                   for e in await journal(api, "quarantined")]
    notices = {}
    for body in [*hostile_packages(), package([vn_invoice(6)], package_id=UNREADABLE),
                 package([vn_invoice(7)], package_id=UNREADABLE_2)]:
        code, notice, _ = await api.post(body)
        notices[body["package_id"]] = (code, notice.get("result"),
                                       (notice.get("error") or {}).get("code"))
    return {"indexed": indexed, "journal": status["journal"], "quarantined": quarantined,
            "notices": notices}


async def test_poison_packages_never_hold_back_the_good_ones_and_a_restart_changes_nothing(
        backend: Backend, processes: list[Process], http: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    service = start_service(backend, tmp_path)
    processes.append(service)
    service.start()
    await service.ready(http)
    api = Api(http, service.url)

    for package_id in (UNREADABLE, UNREADABLE_2):
        await backend.plant_unreadable(http, package_id)
    # A maintenance window first: the poison packages are queued in the journal and the
    # reconciler meets them, with good packages behind them; the rest arrive after it.
    now = datetime.now(UTC)
    await api.declare_maintenance(now - timedelta(minutes=1), now + timedelta(seconds=3))
    answers = [await api.post(body) for body in hostile_packages()]
    unreadable = await api.post(package([vn_invoice(6)], package_id=UNREADABLE))
    print(f"{backend.name}: hostile answers "
          f"{[(code, notice.get('result')) for code, notice, _ in answers]}, "
          f"unreadable {unreadable[0]} {unreadable[1].get('result')}")
    for code, notice, _ in [*answers, unreadable]:
        assert code in (200, 202, 422), notice
        if code == 422:
            assert notice["error"]["code"] == "package.count_invalid", notice

    statuses: list[int] = []
    half = GOOD // 2
    await post_good(api, range(1, half + 1), statuses)  # queued behind the poison
    await until_in_primary(backend, range(1, half + 1))
    # the journal drained: the next poison meets the direct path, the rest go straight in
    direct = await api.post(package([vn_invoice(7)], package_id=UNREADABLE_2))
    assert direct[0] == 200, direct
    assert direct[1]["error"]["code"] == "package.unprocessable", direct
    await post_good(api, range(half + 1, GOOD + 1), statuses)
    await until_in_primary(backend, range(1, GOOD + 1))
    print(f"{backend.name}: good packages answered {sorted(set(statuses))}, "
          f"{statuses.count(202)} queued; all {GOOD} in the primary")

    async def drained() -> bool:
        status = await api.reconcile_status()
        return bool(status["journal"]["pending"] == 0 and not status["running"])

    await poll(drained, 60, "the journal to hold nothing pending")
    before = await snapshot(api, backend)
    print(f"{backend.name}: before the restart {before}")
    assert before["journal"]["pending"] == 0
    for package_id, (code, result, _) in before["notices"].items():
        assert (code, result) in ((200, "rejected"), (422, None)), (package_id, code, result)
    assert [pid for _, pid, _ in before["quarantined"]] == [UNREADABLE, UNREADABLE_2]
    for package_id in (UNREADABLE, UNREADABLE_2):
        assert before["notices"][package_id] == (200, "rejected", "package.unprocessable")
    status = await api.reconcile_status()
    assert status["run"]["errors"] == []

    service.stop()
    service.move_to(free_port())
    service.start()
    await service.ready(http)
    api = Api(http, service.url)
    await api.reconcile()
    after = await snapshot(api, Backend(backend.name, backend.data_dir, backend.es_url))
    print(f"{backend.name}: after the restart {after}")
    assert after == before
    ready = await api.get_json("/readyz")
    assert ready["journal"] == {"ok": True, "pending": 0, "quarantined": 2}
    async with http.get(service.url + "/metrics", timeout=REQUEST_TIMEOUT) as resp:
        assert samples(await resp.text())['invoice_journal_entries{state="quarantined"}'] == 2
