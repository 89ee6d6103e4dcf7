"""Chaos: the service process is SIGKILLed mid-intake and restarted on the same data.

`invoice-verify serve` itself (the embedded default: SQLite primary, in-memory replica,
journal and ledgers in a tmp data directory). Clients post packages concurrently and record
every acknowledged package id; the whole process group is SIGKILLed while posts are in
flight; the service is started again on the same data directory and the reconciler runs.

Counted: every acknowledged package's invoices are found (through the service and in the
SQLite primary); re-posting one answers its notice with `Idempotent-Replayed: true` and
changes nothing (equal counts); a package whose post got no answer is either wholly there or
not at all, never half, and posting it again settles it; nothing else is in the primary.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from indexer.store.sqlite import open_sqlite_store
from tests.chaos.conftest import service_env
from tests.chaos.load import Api, Load, Posted, doc_id, lookup_many
from tests.chaos.procs import Process, embedded_service, free_port
from verify.settings import Settings

pytestmark = pytest.mark.chaos

UNKNOWN = range(700_001, 700_011)


async def present(sqlite_path: Path, posts: list[Posted]) -> dict[str, int]:
    """For each package, how many of its invoices the primary holds."""
    async with open_sqlite_store(sqlite_path) as store:
        found = await store.get_invoices({doc_id(n) for p in posts for n in p.numbers})
        return {p.package_id: sum(doc_id(n) in found for n in p.numbers) for p in posts}


async def count(sqlite_path: Path) -> int:
    async with open_sqlite_store(sqlite_path) as store:
        return await store.count_invoices()


async def test_a_killed_service_loses_no_acknowledged_package_and_leaves_none_half(
        processes: list[Process], http: aiohttp.ClientSession, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    sqlite_path = Settings.from_env({"INVOICE_DATA_DIR": str(data_dir)}).sqlite_path
    env = service_env(data_dir, INVOICE_RECONCILE_INTERVAL_SECONDS="1")
    service = embedded_service(data_dir, tmp_path / "service.log", env, free_port())
    processes.append(service)
    service.start()
    await service.ready(http)
    api = Api(http, service.url)

    load = Load(api, held=[], unknown=UNKNOWN, first=1, per_package=5, tag="KILL", pause=0,
                stop_on_error=True)
    async with load.running(intake_workers=8, lookup_workers=0):
        await load.until("intake under way", lambda: len(load.acked()) >= 40)
        service.kill()  # SIGKILL the process group, posts in flight
    acked, unanswered = load.acked(), load.unanswered()
    print(f"posted {len(load.posted)}: acknowledged {len(acked)} "
          f"({sum(p.status == 202 for p in acked)} queued), no answer {len(unanswered)}")
    assert {p.status for p in load.posted} - {None} <= {200, 202}, load.summary()
    assert unanswered, "the kill was not mid-intake: every post had its answer"

    service.start()
    await service.ready(http)
    status = await api.reconcile()
    print(f"reconcile after the restart: {status}")

    # every acknowledged package: all its invoices, in the primary and through the service
    held = await present(sqlite_path, acked)
    short = {pid: n for pid, n in held.items() if n != 5}
    assert short == {}, f"acknowledged packages missing invoices: {short}"
    numbers = [n for p in acked for n in p.numbers]
    answers = await lookup_many(api, numbers, held=True, phase="after restart")
    wrong = [s.problem() for s in answers if s.problem() or (s.body or {})["source"] != "primary"]
    assert wrong == [], wrong[:10]

    # no answer: all of the package or none of it, never half
    fate = await present(sqlite_path, unanswered)
    half = {pid: n for pid, n in fate.items() if n not in (0, 5)}
    whole = sum(n == 5 for n in fate.values())
    print(f"unanswered packages: {whole} wholly indexed, {len(fate) - whole} absent, "
          f"{len(half)} half")
    assert half == {}
    indexed = await count(sqlite_path)
    assert indexed == 5 * (len(acked) + whole), "invoices of no posted package in the primary"

    # re-posting acknowledged packages replays their notices and changes nothing
    replays = [await api.post(p.body) for p in acked]
    not_replayed = [(p.package_id, code, replayed, notice.get("result"))
                    for p, (code, notice, replayed) in zip(acked, replays, strict=True)
                    if (code, replayed, notice.get("result"), notice.get("accepted"))
                    != (200, True, "accepted", 5)]
    assert not_replayed == []
    assert await count(sqlite_path) == indexed

    # a client that got no answer posts again: answered, and the package is then whole
    retried = [await api.post(p.body) for p in unanswered]
    assert {(code, notice["result"]) for code, notice, _ in retried} <= {(200, "accepted")}
    assert [replayed for _, _, replayed in retried] == [fate[p.package_id] == 5
                                                         for p in unanswered]
    assert set((await present(sqlite_path, unanswered)).values()) == {5}
    assert await count(sqlite_path) == 5 * (len(acked) + len(unanswered))
    print(f"indexed after the restart {indexed}, after the retries "
          f"{5 * (len(acked) + len(unanswered))}")
