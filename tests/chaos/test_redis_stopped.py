"""Chaos: the replica's redis-server is killed mid-load, restarted empty, and then the
primary is taken away too.

The service runs as a process on osmem-server (primary) and a private redis-server without
persistence (replica). While Redis is dead, lookups keep being answered by the primary (no
5xx) and intake keeps acknowledging. Redis comes back empty, as a cache node without
persistence does, so the invoices it held are gone from it. A declared maintenance window of
the primary then shows the replica's misses as `unconfirmed` with a gap (never
`not_found`) and queues intake; after the window, the reconciler applies the journal,
resolves every gap (found for the invoices the primary holds, missing for the rest) and
warms the replica, which a second window proves: every invoice is answered from it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from osmem_server import OsmemServer

from fallback.replica import open_redis_replica
from tests.chaos.conftest import FAST_FALLBACK, service_env
from tests.chaos.load import (
    Api,
    Load,
    Seen,
    doc_id,
    lookup_many,
    make_package,
    numbers_of,
    seed,
)
from tests.chaos.polling import poll
from tests.chaos.procs import Process, RedisProcess, free_port, runner_service

pytestmark = pytest.mark.chaos

SEEDED = range(1, 31)
UNKNOWN = range(800_001, 800_011)
WINDOW = timedelta(seconds=10)


async def replica_holds(redis_url: str, numbers: list[int]) -> set[int]:
    """Which of these invoices the replica (Redis, the service's namespace) holds now."""
    async with open_redis_replica(redis_url) as replica:
        return {n for n in numbers if await replica.get(doc_id(n)) is not None}


async def maintenance_active(api: Api) -> bool:
    return (await api.metrics()).get("invoice_maintenance_active") == 1


async def maintenance_over(api: Api) -> bool:
    return not await maintenance_active(api)


async def test_a_dead_replica_costs_nothing_and_comes_back_warm(
        osmem: OsmemServer, redis_server: RedisProcess, processes: list[Process],
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    # the primary gets the default request-path timeout: this test is about the replica
    env = service_env(tmp_path / "data", INVOICE_ES_URL=osmem.url,
                      INVOICE_REDIS_URL=redis_server.url,
                      INVOICE_RECONCILE_INTERVAL_SECONDS="1",
                      **{**FAST_FALLBACK, "INVOICE_PRIMARY_TIMEOUT_MS": "2000"})
    service = runner_service(tmp_path / "service.log", env, free_port())
    processes.append(service)
    service.start()
    await service.ready(http)
    api = Api(http, service.url)
    seeded = await seed(api, SEEDED)

    load = Load(api, held=list(seeded), unknown=UNKNOWN, first=2000, tag="RD")
    async with load.running():
        await load.until("load before the fault",
                         lambda: len(load.acked()) >= 3 and len(load.seen) >= 20)
        load.phase = "redis_dead"
        redis_server.kill()
        await load.until("load while Redis is dead", lambda: (
            len(load.answers("redis_dead")) >= 30
            and sum(p.acked for p in load.posted if p.phase == "redis_dead") >= 4))
        load.phase = "redis_back"
        redis_server.start_ready()
        await poll(lambda: _replica_closed(api), 30, "the replica's breaker to be closed")
        await load.until("load after Redis came back", lambda: (
            sum(p.acked for p in load.posted if p.phase == "redis_back") >= 3))
    print(load.summary())

    # Redis dead: every lookup answered by the primary, every intake accepted at once
    dead = load.answers("redis_dead")
    assert load.problems() == [], load.summary()
    assert {(s.body or {}).get("source") for s in dead} == {"primary"}, load.summary()
    assert {p.status for p in load.posted} == {200}, load.summary()

    # Redis came back empty: what it held before is gone, what came after is there
    held = sorted(load.held)
    in_replica = await replica_holds(redis_server.url, held)
    written_after = {n for p in load.posted if p.phase == "redis_back" for n in p.numbers}
    print(f"held {len(held)}, in the restarted replica {len(in_replica)}, "
          f"written after the restart {len(written_after)}")
    assert not in_replica & set(seeded)
    assert written_after <= in_replica

    # the primary is taken away too: misses are unconfirmed with a gap, intake is queued
    start = datetime.now(UTC) - timedelta(seconds=1)
    await api.declare_maintenance(start, start + WINDOW)
    answers = await lookup_many(api, held, held=True, phase="maintenance")
    misses = await lookup_many(api, UNKNOWN, held=False, phase="maintenance")
    queued_bodies = [make_package(3000 + 5 * i, 5, "MW") for i in range(3)]
    queued = [await api.post(body) for body in queued_bodies]
    still_in_window = await maintenance_active(api)
    assert still_in_window, "the machine was too slow: the window ended during the checks"

    from_replica = [s for s in answers if s.number in in_replica]
    lost = [s for s in answers if s.number not in in_replica]
    counts = {"answers": len(answers), "from replica": len(from_replica),
              "replica misses": len(lost), "unknown": len(misses),
              "queued": sum(code == 202 for code, _, _ in queued)}
    print(f"during maintenance: {counts}")
    assert all(s.status == 200 and s.body is not None for s in [*answers, *misses])
    assert _shape(from_replica) == {("valid", "replica", True)}
    assert _shape(lost) == {("unconfirmed", "replica", True)}
    assert _shape(misses) == {("unconfirmed", "replica", True)}
    assert all((s.body or {}).get("gap_id") for s in [*lost, *misses])
    assert [(code, notice["result"]) for code, notice, _ in queued] == [(202, "queued")] * 3

    # after the window: the reconciler applies the journal and resolves every gap
    await poll(lambda: maintenance_over(api), 30, "the maintenance window to end")
    status = await api.reconcile()
    print(f"reconcile: {status}")
    gaps = {s.number: await api.gap(str((s.body or {})["gap_id"])) for s in [*lost, *misses]}
    resolutions = {(g["status"], g["resolution"]) for g in gaps.values()}
    print(f"gaps opened {len(gaps)}: {sorted(resolutions)}")
    assert {gaps[s.number]["resolution"] for s in lost} == {"found"}
    assert {gaps[s.number]["resolution"] for s in misses} == {"missing"}
    assert {g["status"] for g in gaps.values()} == {"resolved"}
    assert await api.open_gaps() == []

    # the replica is warm again: a second window answers every invoice from it
    queued_numbers = [n for body in queued_bodies for n in numbers_of(body)]
    everything = held + queued_numbers
    assert await replica_holds(redis_server.url, everything) == set(everything)
    start = datetime.now(UTC) - timedelta(seconds=1)
    await api.declare_maintenance(start, start + WINDOW)
    again = await lookup_many(api, everything, held=True, phase="maintenance again")
    assert _shape(again) == {("valid", "replica", True)}
    assert not any((s.body or {}).get("pending_intake") for s in again)


def _shape(seen: list[Seen]) -> set[tuple[str, str, bool]]:
    return {((s.body or {}).get("status", "-"), (s.body or {}).get("source", "-"),
             bool((s.body or {}).get("degraded"))) for s in seen}


async def _replica_closed(api: Api) -> bool:
    metrics = await api.metrics()
    return metrics.get('invoice_breaker_state{state="closed",system="replica"}') == 1
