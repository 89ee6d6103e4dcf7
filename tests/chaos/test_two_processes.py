"""Chaos: two service processes behave as one service (issue 18 item 1,
docs/deployment.md#many-processes).

Two real service processes (`tests.chaos.service`: the app `invoice-verify serve` runs, with
the Elasticsearch clients osmem-server needs), each with its own data directory, on one
osmem-server (the primary, private to this test) and the session's redis-server on
127.0.0.1:6379 (a namespace of this test's own, deleted after). Keys are on: every request
carries a key, as in production.

Shown, each on the real processes: the bootstrap admin key of A is the deployment's (B makes
none of its own); a key made on A works on B, and its revocation on B stops it on A; a
maintenance window declared on A puts B in maintenance; a miss asked on A and on B is one
gap with count 2 seen from either; a package B queued in its journal during the window is
in the primary after B is killed and started again (its journal stays its own, and a
process that starts drains it); once the window ends, the gap is resolved once and its
callback reaches a real local HTTP receiver once, however many reconcile runs follow; B's
lookups are in the audit trail read on A, and so are the ones B recorded while
osmem-server was stopped (SIGSTOP), once it is continued. Every wait is a poll with a
deadline, never a timed assertion.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from osmem_server import OsmemServer

from tests.chaos.conftest import FAST_FALLBACK, service_env
from tests.chaos.load import Api, doc_id, make_package
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
from tests.conftest import bearer
from tests.factories import vn_key
from tests.verify.test_distributed import (
    REDIS,
    namespace,  # noqa: F401 (a namespace of the test's own)
)
from tests.verify.test_intake_journal import callbacks  # noqa: F401 (the callback receiver)

pytestmark = pytest.mark.chaos

API = "/api/v1"
WITHIN = 45.0
UNKNOWN, SEEN_ON_B, WHILE_STOPPED, QUEUED = 880_001, 880_002, 880_003, 880_100


def service(name: str, tmp_path: Path, osmem: OsmemServer, redis_prefix: str) -> ServiceProcess:
    env = service_env(
        tmp_path / f"data-{name}",
        INVOICE_INSECURE_LOCAL="0",
        INVOICE_ES_URL=osmem.url,
        INVOICE_REDIS_URL=REDIS,
        INVOICE_REDIS_NAMESPACE=redis_prefix,
        INVOICE_RECONCILE_INTERVAL_SECONDS="1",
        INVOICE_CALLBACK_ALLOW_PRIVATE="1",
        **FAST_FALLBACK,
    )
    return runner_service(tmp_path / f"service-{name}.log", env, free_port())


async def status(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(f"{url}{API}/gaps", headers=bearer(token)) as resp:
        return resp.status


async def lookup(api: Api, number: int, **extra: str) -> dict[str, Any]:
    params = {**{k: str(v) for k, v in vn_key(number).items()}, **extra}
    async with api.http.get(f"{api.base}{API}/invoices/lookup", params=params) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body


async def trail(api: Api, number: int) -> dict[str, Any]:
    return await api.get_json(f"{API}/admin/audit", action="verify", target=doc_id(number))


async def _ended(api: Api) -> bool:
    return (await api.metrics()).get("invoice_maintenance_active") == 0


async def in_trail(api: Api, number: int) -> bool:
    body = await trail(api, number)
    return "trail" not in body and bool(body["entries"])


async def test_two_processes_share_keys_windows_gaps_and_the_audit_trail(
    osmem: OsmemServer,
    namespace: str,  # noqa: F811 (the fixture)
    callbacks: tuple[str, list[dict[str, Any]]],  # noqa: F811 (the fixture)
    processes: list[Process],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    base, received = callbacks
    callback_url = f"{base}/ok"
    a = service("a", tmp_path, osmem, namespace)
    processes.append(a)
    a.start()
    await a.ready(http)
    admin = (tmp_path / "data-a" / "admin.key").read_text().strip()
    session = aiohttp.ClientSession(headers=bearer(admin), timeout=http.timeout)
    try:
        api_a = Api(session, a.url)
        # listing the keys on A sends its bootstrap admin key to the cluster first
        assert (await api_a.get_json(f"{API}/admin/keys"))["keys"]
        b = service("b", tmp_path, osmem, namespace)
        processes.append(b)
        b.start()
        await b.ready(http)
        api_b = Api(session, b.url)
        assert not (tmp_path / "data-b" / "admin.key").exists(), "B made no admin of its own"

        # a key made on A works on B; revoked on B, it stops working on A
        async with session.post(
            f"{a.url}{API}/admin/keys", json={"role": "verify", "name": "scanner"}
        ) as resp:
            made = await resp.json()
            assert resp.status == 201, made
        token, key_id = made["token"], made["key"]["key_id"]

        async def works_on(url: str, wanted: int) -> bool:
            return await status(http, url, token) == wanted

        await poll(lambda: works_on(b.url, 200), WITHIN, "A's new key to work on B", detail=b.tail)
        async with session.delete(f"{b.url}{API}/admin/keys/{key_id}") as resp:
            assert resp.status == 200, await resp.text()
        await poll(
            lambda: works_on(a.url, 401), WITHIN, "B's revocation to hold on A", detail=a.tail
        )

        # B's lookups are in the audit trail read on A
        assert (await lookup(api_b, SEEN_ON_B))["status"] == "not_found"
        await poll(lambda: in_trail(api_a, SEEN_ON_B), WITHIN, "B's lookup in A's trail")

        # a window declared on A puts B in maintenance
        start = datetime.now(UTC) - timedelta(seconds=1)
        window = await api_a.declare_maintenance(start, start + timedelta(seconds=12))

        async def in_maintenance() -> bool:
            return (await api_b.metrics()).get("invoice_maintenance_active") == 1

        await poll(in_maintenance, WITHIN, "B to be in A's maintenance window", detail=b.tail)

        # a miss asked on A and on B is one gap, count 2, seen from either
        answers = [await lookup(api, UNKNOWN, callback_url=callback_url) for api in (api_a, api_b)]
        assert [x["status"] for x in answers] == ["unconfirmed", "unconfirmed"]
        asked = {x["gap_id"] for x in answers}

        async def one_gap_asked_twice(api: Api) -> bool:
            gaps = (await api.get_json(f"{API}/gaps"))["gaps"]
            return [(g["count"], g["status"]) for g in gaps] == [(2, "open")]

        for api in (api_a, api_b):
            await poll(lambda api=api: one_gap_asked_twice(api), WITHIN, "one gap, count 2")
        [gap] = (await api_b.get_json(f"{API}/gaps"))["gaps"]
        assert gap["id"] in asked
        for api in (api_a, api_b):
            for gap_id in asked:
                seen = await api.gap(gap_id)
                assert (seen["id"], seen["count"], seen["outage_id"]) == (
                    gap["id"],
                    2,
                    window["id"],
                )

        # intake queued in B's journal during the window; B is killed, and started again
        # after it: it drains its own journal with nobody asking
        code, notice, _ = await api_b.post(make_package(QUEUED, 2, "TWO"))
        assert (code, notice["result"]) == (202, "queued"), notice
        b.kill()
        b.move_to(free_port())
        await poll(lambda: _ended(api_a), WITHIN, "the maintenance window to end")
        b.start()
        await b.ready(http)
        api_b = Api(session, b.url)

        async def applied_from_b_journal() -> bool:
            answer = await lookup(api_a, QUEUED + 1)
            return (answer["status"], answer["source"]) == ("valid", "primary")

        await poll(
            applied_from_b_journal, WITHIN, "B's journal to be drained at its start", detail=b.tail
        )
        # the entry is marked applied just after its invoices commit to the primary
        async def b_journal_empty() -> bool:
            return bool((await api_b.reconcile_status())["journal"]["pending"] == 0)

        await poll(b_journal_empty, WITHIN, "B's journal entry to be marked applied",
                   detail=b.tail)

        # the window is over: the gap is resolved once, its callback delivered once
        async def resolved(api: Api) -> bool:
            return (await api.gap(gap["id"]))["status"] == "resolved"

        for api in (api_a, api_b):
            await poll(
                lambda api=api: resolved(api),
                WITHIN,
                "the gap to be resolved",
                detail=lambda: a.tail() + "\n" + b.tail(),
            )
        await poll(lambda: bool(received), WITHIN, "the gap's callback")
        for api in (api_a, api_b):
            await api.reconcile()  # more runs on both: nothing is resolved or sent again
        [callback] = received
        assert (callback["gap_id"] in asked, callback["resolution"]) == (True, "missing")
        final = [await api.gap(gap["id"]) for api in (api_a, api_b)]
        assert final[0] == final[1]
        assert (final[0]["count"], final[0]["resolution"]) == (2, "missing")
        assert [r["notified_at"] is not None for r in final[0]["requesters"]] == [True]

        # audit entries written while osmem-server is stopped reach the trail after
        osmem_pid = osmem.pid
        freeze(osmem_pid)
        try:
            answer = await lookup(api_b, WHILE_STOPPED)
            assert answer["status"] == "unconfirmed"
            assert (await trail(api_a, WHILE_STOPPED)).get("trail") == "local"
        finally:
            thaw(osmem_pid)
        await poll(
            lambda: in_trail(api_a, WHILE_STOPPED),
            WITHIN,
            "the lookup B recorded while the primary was stopped, in A's trail",
        )
    finally:
        await session.close()


async def test_two_processes_started_together_make_one_admin_key(
    osmem: OsmemServer,
    namespace: str,  # noqa: F811 (the fixture)
    processes: list[Process],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """A fresh deployment whose two processes start at once (compose's replicas): each
    used to make an admin key of its own. Exactly one is made (created in the cluster under
    a fixed id, `verify.shared_state.SharedState.claim_admin`): one process holds its token
    in its `admin.key`, the other writes none, and the token works on both at once."""
    both = [service(name, tmp_path, osmem, namespace) for name in ("a", "b")]
    processes.extend(both)
    for proc in both:
        proc.start()
    for proc in both:
        await proc.ready(http)
    files = [tmp_path / f"data-{name}" / "admin.key" for name in ("a", "b")]
    written = [f for f in files if f.exists()]
    assert len(written) == 1, f"admin.key files: {written}"
    admin = written[0].read_text().strip()
    async with aiohttp.ClientSession(headers=bearer(admin), timeout=http.timeout) as session:
        for proc in both:
            keys = (await Api(session, proc.url).get_json(f"{API}/admin/keys"))["keys"]
            admins = [k["key_id"] for k in keys if k["role"] == "admin"]
            assert admins == [admin.split("_")[1]], (proc.url, keys)


async def test_a_process_starting_fresh_leaves_the_window_another_still_sees(
    redis_server: RedisProcess,
    processes: list[Process],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """Two service processes on one data directory (compose's replicas on one volume,
    `serve --workers`) share its outage log. Redis (their replica) stops: A detects it and
    opens a window. B starts fresh meanwhile: its start used to close every open detected
    window of the file as a dead process's, A's included, while A still saw Redis down.
    Now A holds its window (a lease renewed at every probe, fallback/outages.py), so it
    stays open through B's start; it ends once Redis is back and both have recovered."""
    data = tmp_path / "data"
    env = service_env(data, INVOICE_REDIS_URL=redis_server.url, **FAST_FALLBACK)
    a, b = (embedded_service(data, tmp_path / f"service-{n}.log", env, free_port())
            for n in ("a", "b"))
    processes.extend([a, b])
    a.start()
    await a.ready(http)
    api_a = Api(http, a.url)

    async def replica_windows(api: Api) -> list[dict[str, Any]]:
        body = await api.get_json(f"{API}/outages", system="replica")
        return [w for w in body["outages"] if w["kind"] == "detected"]

    async def open_one(api: Api) -> bool:
        return any(w["end"] is None for w in await replica_windows(api))

    redis_server.stop()
    await poll(lambda: open_one(api_a), WITHIN, "A's window of the replica", detail=a.tail)
    (window,) = [w for w in await replica_windows(api_a) if w["end"] is None]

    b.start()
    await b.ready(http, path="/healthz")
    api_b = Api(http, b.url)
    await poll(lambda: _replica_open(api_b), WITHIN, "B's replica breaker to open",
               detail=b.tail)
    for api in (api_a, api_b):
        (still,) = [w for w in await replica_windows(api) if w["id"] == window["id"]]
        assert still["end"] is None, still

    redis_server.start_ready()

    async def ended() -> bool:
        (now,) = [w for w in await replica_windows(api_a) if w["id"] == window["id"]]
        return now["end"] is not None

    await poll(ended, WITHIN, "the window to end once both recovered", detail=a.tail)
    assert not await open_one(api_b)


async def _replica_open(api: Api) -> bool:
    metrics = await api.metrics()
    return metrics.get('invoice_breaker_state{state="open",system="replica"}') == 1
