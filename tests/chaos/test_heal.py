"""Chaos: healing starts when the primary is usable again (issue 18 item 6,
docs/outages.md#the-reconciler).

A real service process, its breaker's open period and the reconciler's periodic check both
set to an hour, so that nothing but the probe-driven path can heal within the test: the
health probe that sees the primary answer again closes the breaker (it saw it fail first),
or finds a declared maintenance window over, and wakes the reconciler, which drains the
journal (and resolves the gap of a miss asked meanwhile) without any `POST /reconcile`.
Removing either the early close or the wake-up leaves the package in the journal (and the
gap open) for an hour, and the test fails at its liveness bound. The bound is generous (a
loaded machine), never a measure of speed: bench/outage.py gives the figures.

With Elasticsearch frozen (SIGSTOP), the gap's forward to the deployment's ledger times out
on our side and is applied when osmem-server resumes; the process sends it again, as it
never saw the answer. The gap must end resolved in `GET /gaps` (the deployment's ledger),
not open again once the resend lands after the reconciler resolved it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from osmem_server import OsmemServer

from tests.chaos.conftest import FAST_FALLBACK, service_env
from tests.chaos.load import API, Api, make_package, seed
from tests.chaos.polling import poll
from tests.chaos.procs import (
    Process,
    RedisProcess,
    ServiceProcess,
    embedded_service,
    free_port,
    freeze,
    runner_service,
    thaw,
)

pytestmark = pytest.mark.chaos

HOUR = "3600"
#: Only the probe-driven path may heal within the test.
SLOW_OTHERWISE = {**FAST_FALLBACK, "INVOICE_BREAKER_OPEN_SECONDS": HOUR,
                  "INVOICE_RECONCILE_INTERVAL_SECONDS": HOUR}
LIVENESS = 90.0
UNKNOWN = 770_001


async def queue_package(api: Api, first: int) -> int:
    """During the outage: a package queued in the journal (202); its first number."""
    body = make_package(first, 2, "HEAL")
    status, notice, _ = await api.post(body)
    assert status == 202, notice
    return first


async def record_gap(api: Api) -> str:
    """During the outage: a miss recorded as a gap (unconfirmed); the gap's id."""
    code, answer = await api.lookup(UNKNOWN)
    assert (code, answer["status"]) == (200, "unconfirmed"), answer
    assert answer["gap_id"], answer
    return str(answer["gap_id"])


async def healed(api: Api, service: ServiceProcess, first: int, gap_id: str | None) -> None:
    """Until the journal is drained, the package's invoices answered by the primary and the
    gap (if any) resolved, none of it asked for."""
    seen: list[object] = []

    async def whole() -> bool:
        status = await api.reconcile_status()
        gap = {"status": "resolved"} if gap_id is None else await api.gap(gap_id)
        code, answer = await api.lookup(first)
        seen[:] = [status, gap, (code, answer["status"], answer["source"])]
        return (not status["journal"]["pending"] and not status["open_gaps"]
                and gap["status"] == "resolved"
                and (code, answer["status"], answer["source"]) == (200, "valid", "primary"))

    await poll(whole, LIVENESS, "the journal drained and the gap resolved, unasked",
               interval=0.2, detail=lambda: f"last seen: {seen}\n{service.tail()}")


async def test_a_primary_back_from_an_outage_heals_without_waiting_out_the_breaker(
        osmem: OsmemServer, redis_server: RedisProcess, processes: list[Process],
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", INVOICE_ES_URL=osmem.url,
                      INVOICE_REDIS_URL=redis_server.url, **SLOW_OTHERWISE)
    service = runner_service(tmp_path / "service.log", env, free_port())
    processes.append(service)
    service.start()
    await service.ready(http)
    api = Api(http, service.url)
    await seed(api, range(1, 6))

    freeze(osmem.pid)
    try:
        await poll(lambda: _not(api.primary_closed()), 30, "the primary's breaker to open",
                   detail=service.tail)
        first, gap_id = await queue_package(api, 100), await record_gap(api)
        # A read of the ledger forwards first: to the frozen cluster, so it times out (the
        # write waits in osmem-server's socket) and the local ledger answers.
        assert [g["id"] for g in await api.open_gaps()] == [gap_id]
    finally:
        thaw(osmem.pid)
    await healed(api, service, first, gap_id)
    assert await api.primary_closed()
    # Each read of the ledger forwards first: what this process has not seen acknowledged
    # is sent again now, after the resolution. It must not open the gap again.
    listed = (await api.get_json(f"{API}/gaps", limit="1000"))["gaps"]
    assert [(g["id"], g["status"]) for g in listed] == [(gap_id, "resolved")], listed
    assert await api.open_gaps() == []
    assert (await api.reconcile_status())["open_gaps"] == 0


async def test_the_end_of_a_maintenance_window_heals_at_once(
        processes: list[Process], http: aiohttp.ClientSession, tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", **SLOW_OTHERWISE)
    service = embedded_service(tmp_path / "data", tmp_path / "service.log", env, free_port())
    processes.append(service)
    service.start()
    await service.ready(http)
    api = Api(http, service.url)
    await seed(api, range(1, 6))

    now = datetime.now(UTC)
    window = await api.declare_maintenance(now - timedelta(seconds=1),
                                           now + timedelta(seconds=4))
    first, gap_id = await queue_package(api, 200), await record_gap(api)
    assert (await api.reconcile_status())["journal"]["pending"] == 1
    await healed(api, service, first, gap_id)
    assert datetime.now(UTC) >= datetime.fromisoformat(window["end"].replace("Z", "+00:00"))


async def _not(check: Any) -> bool:
    return not await check
