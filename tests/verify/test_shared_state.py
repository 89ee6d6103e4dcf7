"""The shared state of the distributed deployment (docs/deployment.md#many-processes), through
the real app: several service processes, each with its own data directory, on one
Elasticsearch (osmem-server in CI, or INVOICE_ES_URL). Keys made or revoked through any of
them hold on all; the audit trail read on one has the others' entries; what a process
writes while the cluster is down waits in its local files and reaches the cluster after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fallback.gaps import GapOutcome, GapReason, GapRequest, GapStatus, Resolution, open_gap_ledger
from fallback.outages import SHARED_IDS_FROM, OutageLog, System, open_outage_log
from fallback.shared_file import open_shared_file
from fallback.shared_gaps import SharedGapLedger
from fallback.shared_outages import WindowSync
from indexer.store.elasticsearch import PATIENT
from indexer.store.es_state import StateLayout, open_shared_state
from indexer.store.protocol import StoreUnavailableError
from tests.chaos.polling import poll
from tests.chaos.procs import free_port
from tests.conftest import Client, EsTarget, bearer
from tests.factories import vn_key
from tests.indexer.store.conftest import drop_layout, fresh_prefix
from tests.verify.test_intake_journal import (
    callbacks,  # noqa: F401 (the callback receiver)
    lookup,
    maintenance,
    reconcile,
    wait_out,
)
from verify.access.apikeys import KeyStore
from verify.access.audit import AuditTrail
from verify.access.db import open_access_db
from verify.access.roles import Principal, Role
from verify.access.shared_audit import AuditShipper
from verify.app import create_app
from verify.keys import OUTAGES, SERVICES
from verify.settings import Settings
from verify.shared_state import shared_file_path

Start = Callable[[str], Awaitable[Client]]
WITHIN = 30.0  # a poll's deadline: generous for a slow machine, never a timed assertion


@pytest.fixture
async def prefix(es_target: EsTarget) -> AsyncIterator[str]:
    name = fresh_prefix()
    yield name
    client = es_target.client_factory(es_target.url, PATIENT)
    try:
        await drop_layout(client, StateLayout(name))
    finally:
        await client.close()


def settings_of(tmp_path: Path, name: str, es_target: EsTarget, prefix: str) -> Settings:
    return Settings.from_env(
        {
            "INVOICE_DATA_DIR": str(tmp_path / name),
            "INVOICE_ES_URL": es_target.url,
            "INVOICE_ES_INDEX_PREFIX": prefix,
            "INVOICE_CALLBACK_ALLOW_PRIVATE": "1",
            "INVOICE_GAP_GRACE_HOURS": "0",
        }
    )


@pytest.fixture
def start(aiohttp_client: Any, tmp_path: Path, es_target: EsTarget, prefix: str) -> Start:
    """One more service process on the shared cluster, with its own data directory and an
    admin key made there the way `invoice-verify keys create` makes one."""

    async def started(name: str) -> Client:
        settings = settings_of(tmp_path, name, es_target, prefix)
        async with open_access_db(settings.access_path) as conn:
            token, _ = await KeyStore(conn).create(Role.ADMIN, name=f"admin of {name}")
        app = create_app(settings, es_client_factory=es_target.client_factory)
        client: Client = await aiohttp_client(app, headers=bearer(token))
        return client

    return started


async def status_with(cli: Client, token: str) -> int:
    async with cli.get("/api/v1/gaps", headers=bearer(token)) as resp:
        return resp.status


async def test_a_key_made_on_one_process_works_on_another_until_revoked_there(start: Start) -> None:
    one, two = await start("one"), await start("two")
    made = await one.post("/api/v1/admin/keys", json={"role": "verify", "name": "scanner 7"})
    assert made.status == 201, await made.text()
    body = await made.json()
    token, key_id = body["token"], body["key"]["key_id"]
    assert await status_with(one, token) == 200
    await poll(lambda: _is(status_with(two, token), 200), WITHIN, "the key to work on two")

    listed = await (await two.get("/api/v1/admin/keys")).json()
    names = {k["name"] for k in listed["keys"]}
    assert {"admin of one", "admin of two", "scanner 7"} <= names, names

    revoked = await two.delete(f"/api/v1/admin/keys/{key_id}")
    assert revoked.status == 200, await revoked.text()
    assert await status_with(two, token) == 401
    await poll(
        lambda: _is(status_with(one, token), 401),
        WITHIN,
        "the revocation on two to stop the key on one",
    )
    listed = await (await one.get("/api/v1/admin/keys")).json()
    assert [k["revoked_at"] is not None for k in listed["keys"] if k["key_id"] == key_id] == [True]


async def _is(status: Awaitable[int], wanted: int) -> bool:
    return await status == wanted


async def test_the_audit_trail_read_on_one_process_has_the_lookups_of_another(start: Start) -> None:
    one, two = await start("one"), await start("two")
    target = "vn:0100109106:1:C22TAA:424242"
    answer = await two.get(
        "/api/v1/invoices/lookup", params={k: str(v) for k, v in vn_key(424242).items()}
    )
    assert answer.status == 200, await answer.text()

    async def on_one() -> list[dict[str, Any]]:
        body = await (
            await one.get("/api/v1/admin/audit", params={"action": "verify", "target": target})
        ).json()
        assert "trail" not in body, "the deployment's trail, not a local one"
        entries: list[dict[str, Any]] = body["entries"]
        return entries

    await poll(lambda: _has_entries(on_one()), WITHIN, "two's lookup in the trail read on one")
    [entry] = await on_one()
    assert (entry["action"], entry["target"], entry["role"], entry["outcome"]) == (
        "verify",
        target,
        "admin",
        "not_found",
    )


async def _has_entries(entries: Awaitable[list[dict[str, Any]]]) -> bool:
    return bool(await entries)


async def test_audit_entries_wait_in_the_local_file_while_the_cluster_is_down(
    tmp_path: Path, es_target: EsTarget, prefix: str
) -> None:
    """Written with the cluster unreachable, shipped once it answers, each once."""
    settings = settings_of(tmp_path, "one", es_target, prefix)
    who = Principal("k1", Role.VERIFY, frozenset(), "scanner")
    dead = f"http://127.0.0.1:{free_port()}"
    async with (
        open_access_db(settings.access_path) as conn,
        open_shared_file(shared_file_path(settings.data_dir)) as file,
    ):
        trail = AuditTrail(conn, retention=timedelta(days=730))
        for number in range(3):
            trail.record(who, "verify", f"invoice {number}", "valid", "10.0.0.1")
        assert await trail.flush() == 3
        async with open_shared_state(
            dead, index_prefix=prefix, client_factory=es_target.client_factory, startup_timeout=0.5
        ) as down:
            with pytest.raises(StoreUnavailableError):
                await AuditShipper(conn, file, down).ship()
        async with open_shared_state(
            es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
        ) as store:
            shipper = AuditShipper(conn, file, store)
            assert await shipper.ship() == 3
            assert await shipper.ship() == 0, "shipped once"
            trail.record(who, "verify", "invoice 3", "valid", "10.0.0.1")
            await trail.flush()
            entries = await shipper.query(key_id="k1")
    assert [e.target for e in entries] == [f"invoice {n}" for n in (3, 2, 1, 0)]
    assert {(e.role, e.client) for e in entries} == {("verify", "10.0.0.1")}


async def test_a_window_declared_on_one_process_is_in_force_on_another_at_its_next_probe(
    start: Start,
) -> None:
    one, two = await start("one"), await start("two")
    begin = datetime.now(UTC) - timedelta(minutes=1)
    declared = await one.post(
        "/api/v1/outages",
        json={
            "system": "primary",
            "start": begin.isoformat(),
            "end": (begin + timedelta(hours=1)).isoformat(),
            "reason": "add nodes",
        },
    )
    assert declared.status == 201, await declared.text()
    window = await declared.json()
    assert window["id"] >= SHARED_IDS_FROM
    assert two.app[OUTAGES].active(System.PRIMARY) is None
    await two.app[SERVICES].monitor.probe_once()  # one probe: it re-reads the windows
    active = two.app[OUTAGES].active(System.PRIMARY)
    assert active is not None
    assert (active.id, active.reason) == (window["id"], "add nodes")
    listed = await (await two.get("/api/v1/outages", params={"kind": "declared"})).json()
    assert [w["id"] for w in listed["outages"]] == [window["id"]]
    answer = await two.get(
        "/api/v1/invoices/lookup", params={k: str(v) for k, v in vn_key(7).items()}
    )
    assert (await answer.json())["status"] == "unconfirmed", "maintenance: primary not asked"


async def test_windows_are_known_with_the_cluster_down_and_sent_when_it_is_back(
    tmp_path: Path, es_target: EsTarget, prefix: str
) -> None:
    """A window declared on one with the cluster down holds there at once and reaches two
    when the cluster answers; two keeps it through an outage of its own."""
    now = datetime.now(UTC)
    dead = f"http://127.0.0.1:{free_port()}"

    @asynccontextmanager
    async def log_of(name: str, url: str) -> AsyncIterator[OutageLog]:
        settings = settings_of(tmp_path, name, es_target, prefix)
        async with (
            open_shared_file(shared_file_path(settings.data_dir)) as file,
            open_shared_state(
                url,
                index_prefix=prefix,
                client_factory=es_target.client_factory,
                startup_timeout=0.5,
            ) as store,
            open_outage_log(settings.outages_path, sharing=WindowSync(file, store)) as log,
        ):
            yield log

    async with log_of("one", dead) as one:
        window = await one.declare(System.PRIMARY, now, now + timedelta(hours=1), "disk", "ops")
        assert one.active(System.PRIMARY) == window
    async with log_of("two", es_target.url) as two:
        assert two.active(System.PRIMARY) is None, "not sent yet: the cluster was down"
        async with log_of("one", es_target.url) as one:  # its next refresh sends it
            assert one.active(System.PRIMARY) == window
        await two.refresh()
        assert two.active(System.PRIMARY) == window
        assert await two.get(window.id) == window
    async with log_of("two", dead) as two:
        assert two.active(System.PRIMARY) == window, "the copy stands with the cluster down"
        assert [w.id for w in await two.list()] == [window.id]


async def gaps_of(cli: Client) -> list[dict[str, Any]]:
    body = await (await cli.get("/api/v1/gaps")).json()
    gaps: list[dict[str, Any]] = body["gaps"]
    return gaps


async def test_a_miss_asked_on_two_processes_is_one_gap_resolved_once_and_called_back_once(
    start: Start,
    callbacks: tuple[str, list[dict[str, Any]]],  # noqa: F811 (the fixture)
) -> None:
    base, received = callbacks
    one, two = await start("one"), await start("two")
    await maintenance(one, 2.0)
    await two.app[SERVICES].monitor.probe_once()
    answers = [await lookup(cli, 31, callback_url=f"{base}/ok") for cli in (one, two)]
    assert [a["status"] for a in answers] == ["unconfirmed", "unconfirmed"]
    asked = [a["gap_id"] for a in answers]

    async def merged(cli: Client) -> bool:
        return [g["count"] for g in await gaps_of(cli)] == [2]

    for cli in (one, two):
        await poll(lambda cli=cli: merged(cli), WITHIN, "one gap asked twice")
    canonical = (await gaps_of(one))[0]["id"]
    assert canonical in asked, "the gap's id is the first process's that sent it"
    for cli in (one, two):
        for gap_id in asked:
            gap = await (await cli.get(f"/api/v1/gaps/{gap_id}")).json()
            assert (gap["id"], gap["count"], gap["status"]) == (canonical, 2, "open")
            assert len({r["key_id"] for r in gap["requesters"]}) == 2, "both admins asked"

    await wait_out(one)
    await wait_out(two)
    runs = await asyncio.gather(reconcile(one), reconcile(two))
    assert [r["open_gaps"] for r in runs] == [0, 0]
    await poll(lambda: len(received) >= 2, WITHIN, "the callbacks")
    await asyncio.gather(reconcile(one), reconcile(two))  # again: nothing more to send
    assert sorted(r["gap_id"] for r in received) == sorted(asked), "each its own id, once"
    assert {(r["resolution"], r["status"]) for r in received} == {("missing", "not_found")}
    for cli in (one, two):
        [gap] = await gaps_of(cli)
        assert (gap["id"], gap["status"], gap["count"]) == (canonical, "resolved", 2)
        assert all(r["notified_at"] is not None for r in gap["requesters"])
    again = [await lookup(cli, 31) for cli in (one, two)]
    assert [a["status"] for a in again] == ["not_found", "not_found"]


@asynccontextmanager
async def shared_ledger(
    tmp_path: Path, name: str, es_target: EsTarget, prefix: str
) -> AsyncIterator[SharedGapLedger]:
    settings = settings_of(tmp_path, name, es_target, prefix)
    async with (
        open_shared_file(shared_file_path(settings.data_dir)) as file,
        open_shared_state(
            es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
        ) as store,
        open_gap_ledger(settings.gaps_path) as local,
    ):
        yield SharedGapLedger(local, store, file, max_attempts=3, claim_seconds=60)


def miss(requester: str) -> GapRequest:
    key = vn_key(55)
    return GapRequest(
        lookup_key="vn:0100109106:1:C22TAA:55",
        scheme="vn",
        key=key,
        seller_tax_id=key["seller_tax_id"],
        reason=GapReason.PRIMARY_DOWN,
        requester=requester,
        callback_url="https://cb.example/gaps",
    )


async def test_racing_reconcilers_resolve_a_gap_once_and_claim_its_callback_once(
    tmp_path: Path, es_target: EsTarget, prefix: str
) -> None:
    async with (
        shared_ledger(tmp_path, "one", es_target, prefix) as one,
        shared_ledger(tmp_path, "two", es_target, prefix) as two,
    ):
        first = await one.record(miss("key_a"))
        await two.record(miss("key_b"))
        await asyncio.gather(one.forward(), two.forward())
        [gap] = await two.list(status=GapStatus.OPEN)
        assert (gap.count, {r.key_id for r in gap.requesters}) == (2, {"key_a", "key_b"})
        resolution = Resolution(gap.id, GapOutcome.MISSING, {"status": "not_found"}, gap.lookup_key)
        resolved = await asyncio.gather(
            *(ledger.resolve_many([resolution]) for ledger in (one, two, one, two))
        )
        assert sum(resolved) == 1
        assert await one.count(GapStatus.OPEN) == 0
        due = await two.due_callbacks(max_attempts=3)
        assert sorted(d.key_id for d in due) == ["key_a", "key_b"]
        claims = await asyncio.gather(
            *(ledger.claim_callback(gap.id, "key_a") for ledger in (one, two, one, two))
        )
        assert sorted(claims) == [False, False, False, True]
        assert [d.key_id for d in await one.due_callbacks(max_attempts=3)] == ["key_b"]
        await one.callback_sent(gap.id, "key_a")
        assert not await two.claim_callback(gap.id, "key_a"), "sent: not again"
        await one.forward()  # one learns the resolution: its next miss is a new gap
        assert (await one.local.get(first.id)).status is GapStatus.RESOLVED  # type: ignore[union-attr]
        fresh = await one.record(miss("key_a"))
        assert fresh.id != first.id
        await one.forward()
        assert [g.id for g in await two.list(status=GapStatus.OPEN)] == [fresh.id]


async def test_gaps_resolved_before_the_ledger_was_shared_are_sent_once(
    tmp_path: Path, es_target: EsTarget, prefix: str
) -> None:
    """A data directory of an Elasticsearch deployment from before the shared ledger."""
    settings = settings_of(tmp_path, "old", es_target, prefix)
    async with open_gap_ledger(settings.gaps_path) as local:
        await local.record(miss("key_a"))
        gap = await local.record(miss("key_b"))
        await local.resolve_many([Resolution(gap.id, GapOutcome.FOUND, {"status": "valid"})])
        await local.callback_sent(gap.id, "key_a")
    async with shared_ledger(tmp_path, "old", es_target, prefix) as ledger:
        assert await ledger.forward() == 0, "nothing open to send"
        shared = await ledger.get(gap.id)
        assert shared is not None
        assert (shared.status, shared.resolution, shared.count, shared.answer) == (
            GapStatus.RESOLVED,
            "found",
            2,
            {"status": "valid"},
        )
        notified = {r.key_id: r.notified_at is not None for r in shared.requesters}
        assert notified == {"key_a": True, "key_b": False}
        assert [d.key_id for d in await ledger.due_callbacks(max_attempts=3)] == ["key_b"]
    async with shared_ledger(tmp_path, "old", es_target, prefix) as again:
        await again.forward()  # sent once: the claim of key_b is not undone by a resend
        assert await again.claim_callback(gap.id, "key_b")
        await again.forward()
        assert not await again.claim_callback(gap.id, "key_b")


async def test_with_the_shared_ledger_a_gap_is_remembered_for_the_moment_only(
        aiohttp_client: Any, tmp_path: Path, es_target: EsTarget, prefix: str) -> None:
    """Another process resolves a shared gap on the cluster, not in this process's file, so
    the file's quiet proves nothing: past the moment a repeated ask waits for its commit
    even while other misses keep the ledger writing (INVOICE_MISS_MEMORY_QUIET_S is off)."""
    settings = Settings.from_env({
        "INVOICE_DATA_DIR": str(tmp_path / "one"), "INVOICE_ES_URL": es_target.url,
        "INVOICE_ES_INDEX_PREFIX": prefix, "INVOICE_MISS_MEMORY_MS": "300"})
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN, name="admin of one")
    cli = await aiohttp_client(create_app(settings, es_client_factory=es_target.client_factory),
                               headers=bearer(token))
    await maintenance(cli, 60.0)
    ledger = cli.app[SERVICES].gaps
    assert isinstance(ledger, SharedGapLedger)
    first = await lookup(cli, 41)
    await asyncio.sleep(0.5)  # past the moment
    await lookup(cli, 42)  # a batch of the local file, written by nobody else
    again = await lookup(cli, 41)
    assert (first["status"], again["status"]) == ("unconfirmed", "unconfirmed")
    assert again["gap_id"] == first["gap_id"]
    assert ledger.local.early == 0
