"""Chaos: the service is SIGKILLed while misses record gaps; every `gap_id` a client was
given is in the ledger after the restart (issue 22, docs/outages.md#gap-ledger).

The real service process on both gap stores: the embedded default (`invoice-verify serve`,
the ledger is `gaps.sqlite3`) and the shared ledger (`tests.chaos.service` on a private
osmem-server: recorded in the process's `gaps.sqlite3` first, forwarded to the cluster). A
maintenance window of the primary is declared, so every lookup of an invoice nobody posted
is answered `unconfirmed` with a gap. Sixteen clients ask about a few dozen such keys at
once, again and again (everyone retrying in an outage: concurrent asks of one key share a
write, concurrent writes share a commit), and the whole process group is SIGKILLed while
lookups are in flight (the clients go on until one of them is cut or refused).

Counted, before the restart, in the ledger file the killed process left: every gap id a
client received is there, with a row of the requester it was answered to (a requester's
first ask is answered only once on disk). A repeated ask answered from the ledger's memory
is counted a fraction of a second later, so the kill may lose such counts, and only those:
each gap counts at least one ask. After the restart,
through `GET /api/v1/gaps/{id}`: every such gap is found (on the shared ledger, once the
restarted process has forwarded what it recorded).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from osmem_server import OsmemServer

from tests.chaos.conftest import FAST_FALLBACK, service_env
from tests.chaos.load import API, Api, Load, doc_id
from tests.chaos.polling import poll
from tests.chaos.procs import (
    Process,
    ServiceProcess,
    embedded_service,
    free_port,
    runner_service,
)
from verify.settings import Settings

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

UNKNOWN = range(990_001, 990_041)
#: Answers with a gap id before the kill: enough that many commits held several asks.
ANSWERED = 300


def ledger_file(data_dir: Path) -> Path:
    return Settings.from_env({"INVOICE_DATA_DIR": str(data_dir)}).gaps_path


def on_disk(path: Path) -> dict[str, tuple[str, int, int]]:
    """Every gap in the ledger file: id -> (lookup key, count, requester rows)."""
    conn = sqlite3.connect(path)
    try:
        return {str(gap_id): (str(key), int(count), int(rows))
                for gap_id, key, count, rows in conn.execute(
                    "SELECT id, lookup_key, count, (SELECT COUNT(*) FROM gap_requesters "
                    "WHERE gap_id = gaps.id) FROM gaps")}
    finally:
        conn.close()


def service(store: str, tmp_path: Path, osmem: OsmemServer | None) -> ServiceProcess:
    data_dir = tmp_path / "data"
    env = service_env(data_dir, INVOICE_RECONCILE_INTERVAL_SECONDS="3600", **FAST_FALLBACK)
    log = tmp_path / "service.log"
    if store == "embedded":
        return embedded_service(data_dir, log, env, free_port())
    assert osmem is not None
    return runner_service(log, {**env, "INVOICE_ES_URL": osmem.url}, free_port())


@pytest.fixture(params=["embedded", "shared"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cluster(store: str, request: pytest.FixtureRequest) -> OsmemServer | None:
    """osmem-server for the shared ledger (the chaos tests' own, private to this test)."""
    return request.getfixturevalue("osmem") if store == "shared" else None


async def test_every_gap_id_answered_before_a_kill_is_in_the_ledger(
        store: str, cluster: OsmemServer | None, processes: list[Process],
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    proc = service(store, tmp_path, cluster)
    processes.append(proc)
    proc.start()
    await proc.ready(http)
    api = Api(http, proc.url)
    now = datetime.now(UTC)
    await api.declare_maintenance(now - timedelta(minutes=1), now + timedelta(hours=1))

    load = Load(api, held=[], unknown=UNKNOWN, first=1, pause=0, stop_on_error=True)
    async with load.running(intake_workers=0, lookup_workers=16):
        await load.until("misses answered with gap ids",
                         lambda: len(load.answers(status="unconfirmed")) >= ANSWERED)
        proc.kill()  # SIGKILL the process group, lookups in flight
        # The workers go on until one is cut or refused by the dead process: a lookup
        # answered from the ledger's memory takes a millisecond, so every answer of the
        # moment may already sit in the clients' buffers when the kill lands.
        await load.until("a lookup cut or refused by the kill",
                         lambda: any(s.status is None for s in load.seen))
    answered = [s for s in load.seen if s.body is not None]
    wrong = [s.problem() for s in answered if s.problem() is not None
             or s.body is None or s.body["status"] != "unconfirmed"]
    assert wrong == [], wrong[:10]
    unanswered = [s for s in load.seen if s.status is None]
    given = Counter(str(s.body["gap_id"]) for s in answered if s.body is not None)
    print(f"{store}: {len(answered)} answers carrying {len(given)} gap ids, "
          f"{len(unanswered)} lookups cut or refused by the kill")

    # what the killed process left on disk
    stored = on_disk(ledger_file(tmp_path / "data"))
    missing = sorted(set(given) - set(stored))
    assert missing == [], f"gap ids answered but not on disk: {missing[:10]}"
    unheld = {gap_id: stored[gap_id] for gap_id in given
              if stored[gap_id][1] < 1 or stored[gap_id][2] < 1}
    assert unheld == {}, f"gaps without an ask or a requester on disk: {unheld}"
    lost = sum(max(0, n - stored[gap_id][1]) for gap_id, n in given.items())
    print(f"{store}: repeated asks whose count the kill lost: {lost} of {sum(given.values())}")
    keys = {stored[gap_id][0] for gap_id in given}
    assert keys <= {doc_id(n) for n in UNKNOWN}
    assert len(keys) == len(given), "one open gap per key"

    # and through the restarted service
    proc.move_to(free_port())
    proc.start()
    await proc.ready(http)
    api = Api(http, proc.url)
    pending = set(given)

    async def all_found() -> bool:
        for gap_id in sorted(pending):
            async with http.get(f"{api.base}{API}/gaps/{gap_id}") as resp:
                if resp.status != 200:
                    return False
                body = await resp.json()
            assert gap_id == body["id"] or store == "shared", body
            pending.discard(gap_id)
        return True

    await poll(all_found, 45.0, "every answered gap id through GET /gaps/{id}",
               detail=lambda: f"not found yet: {sorted(pending)[:10]}")
