"""Chaos: a maintenance window of the primary, declared ahead of time over the API.

`invoice-verify serve` itself (the embedded default). Load runs before the window, inside
it and after it. The window is declared a little ahead (`POST /api/v1/outages`), so the
switch happens at its start without any request failing first.

Counted: inside the window no request touches the primary (the primary's answer count and
its breaker's failures do not move), lookups are answered from the replica (`valid` for
what it holds, `unconfirmed` with a gap for the rest) and every intake is queued (202);
after the window the reconciler applies the journal (every queued package is then in the
primary, and re-posting it answers its final notice) and resolves every gap; the breaker
never opened.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from indexer.store.sqlite import open_sqlite_store
from tests.chaos.conftest import FAST_FALLBACK, service_env
from tests.chaos.load import Api, Load, doc_id, seed
from tests.chaos.polling import poll
from tests.chaos.procs import Process, embedded_service, free_port
from verify.settings import Settings

pytestmark = pytest.mark.chaos

SEEDED = range(1, 31)
UNKNOWN = range(600_001, 600_021)
LEAD = timedelta(seconds=1.5)
WINDOW = timedelta(seconds=8)
PRIMARY_ANSWERS = "invoice_answers_total"
FAILURES = 'invoice_breaker_failures_total{system="primary"}'
OPENED = 'invoice_breaker_opened_total{system="primary"}'


def primary_answers(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items()
               if k.startswith(PRIMARY_ANSWERS) and 'source="primary"' in k)


async def test_a_declared_window_never_touches_the_primary_and_is_reconciled_after(
        processes: list[Process], http: aiohttp.ClientSession, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = service_env(data_dir, INVOICE_RECONCILE_INTERVAL_SECONDS="1", **FAST_FALLBACK)
    service = embedded_service(data_dir, tmp_path / "service.log", env, free_port())
    processes.append(service)
    service.start()
    await service.ready(http)
    api = Api(http, service.url)
    seeded = await seed(api, SEEDED)

    async def maintenance(active: bool) -> bool:
        return ((await api.metrics()).get("invoice_maintenance_active") == 1) is active

    load = Load(api, held=list(seeded), unknown=UNKNOWN, first=1000, tag="MW")
    async with load.running():
        await load.until("load before the window",
                         lambda: len(load.acked()) >= 3 and len(load.seen) >= 20)
        start = datetime.now(UTC) + LEAD
        window = await api.declare_maintenance(start, start + WINDOW)
        print(f"declared: {window}")
        await poll(lambda: maintenance(True), 30, "the window to start")
    # every request of the block below is sent after the start and answered before the end
    before = await api.metrics()
    load.phase = "window"
    async with load.running():
        await load.until("load inside the window", lambda: (
            len(load.answers("window")) >= 40
            and sum(p.phase == "window" for p in load.posted) >= 4))
    inside = await api.metrics()
    assert await maintenance(True), "the machine was too slow: the window ended meanwhile"
    load.phase = "after"
    await poll(lambda: maintenance(False), 30, "the window to end")
    async with load.running():
        await poll(api.primary_closed, 30, "the primary's breaker to be closed")
        await load.until("load after the window", lambda: (
            len(load.answers("after", source="primary")) >= 20
            and sum(p.acked for p in load.posted if p.phase == "after") >= 3))
    summary = load.summary()
    print(summary)

    # inside the window: the primary untouched, the replica answers, intake queued
    in_window = load.answers("window")
    touched = {"primary answers": primary_answers(inside) - primary_answers(before),
               "primary failures": inside.get(FAILURES, 0) - before.get(FAILURES, 0)}
    print(f"inside the window: {len(in_window)} lookups, primary touched: {touched}")
    assert touched == {"primary answers": 0, "primary failures": 0}
    assert {(s.body or {}).get("source") for s in in_window} == {"replica"}, summary
    assert load.problems() == [], summary
    assert {p.status for p in load.posted if p.phase == "window"} == {202}, summary
    assert all(p.notice and p.notice["result"] == "queued"
               for p in load.posted if p.phase == "window")
    assert load.answers("window", held=False, status="unconfirmed"), summary

    # after: the journal applied, the gaps resolved, nothing acknowledged lost
    status = await api.reconcile()
    print(f"reconcile: {status}")
    acked = load.acked()
    assert {p.status for p in load.posted} <= {200, 202}, summary
    expected = {doc_id(n) for n in seeded} | {doc_id(n) for p in acked for n in p.numbers}
    sqlite_path = Settings.from_env({"INVOICE_DATA_DIR": str(data_dir)}).sqlite_path
    async with open_sqlite_store(sqlite_path) as store:
        found = await store.get_invoices(expected)
        indexed = await store.count_invoices()
    print(f"acknowledged {len(acked)} packages "
          f"({sum(p.status == 202 for p in acked)} queued), invoices expected "
          f"{len(expected)}, indexed {indexed}")
    assert sorted(expected - set(found)) == []
    assert indexed == len(expected)
    for posted in (p for p in acked if p.status == 202):
        code, notice, replayed = await api.post(posted.body)
        assert (code, replayed, notice["result"]) == (200, True, "accepted"), notice

    opened = load.gap_ids()
    gaps = [await api.gap(gap_id) for gap_id in opened]
    print(f"gaps opened {len(opened)}, resolved "
          f"{sum(g['status'] == 'resolved' for g in gaps)}")
    assert {g["status"] for g in gaps} == {"resolved"}
    assert await api.open_gaps() == []
    assert (await api.metrics()).get(OPENED) == 0, "the breaker opened: a request failed first"
