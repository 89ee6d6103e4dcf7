"""The durable intake journal and the reconciler through the real embedded app (SQLite
primary, in-memory replica, real journal and gap-ledger files): packages taken while the
primary is in maintenance are queued (202), answered from the journal meanwhile, applied in
order by the reconciler with every rule re-run; a journal that cannot write makes intake
answer 503 only when the primary cannot take the package either; gaps resolve found or
missing and their callbacks are delivered to a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from fallback.outages import System
from fallback.replica import MemoryReplica
from indexer.journal import open_intake_journal
from indexer.keys import VnKey
from indexer.submission import BodyFormat, read_submission
from tests.conftest import Client, KeyMaker, bearer
from tests.factories import authority_code, cancel, package, vn_invoice, vn_key
from verify.app import create_app
from verify.cli.main import app as cli_app
from verify.keys import JOURNALED_INTAKE, OUTAGES, RECONCILER, REPLICA
from verify.settings import Settings

LOOKUP = "/api/v1/invoices/lookup"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Gaps resolve `missing` at once (no grace); the loop never runs on its own here, so
    every run is the test's (POST /reconcile or the CLI)."""
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_GAP_GRACE_HOURS": "0",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600",
                              "INVOICE_CALLBACK_BACKOFF_SECONDS": "60",
                              # the callback receiver of these tests is on 127.0.0.1
                              "INVOICE_CALLBACK_ALLOW_PRIVATE": "1"})


async def post(cli: Client, body: dict[str, Any], token: str | None = None,
               ) -> tuple[int, dict[str, Any]]:
    resp = await cli.post("/api/v1/packages", json=body,
                          headers=bearer(token) if token else None)
    return resp.status, await resp.json()


async def lookup(cli: Client, number: int, **extra: str) -> dict[str, Any]:
    query = {**{k: str(v) for k, v in vn_key(number).items()}, **extra}
    resp = await cli.get(LOOKUP, params=query)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def maintenance(cli: Client, seconds: float) -> None:
    """A declared maintenance window of the primary, from a minute ago for `seconds`."""
    app = cli.server.app
    assert app is not None
    await app[OUTAGES].declare(System.PRIMARY, now() - timedelta(minutes=1),
                               now() + timedelta(seconds=seconds), "tests", "tests")


async def wait_out(cli: Client) -> None:
    """Until the maintenance window of the primary has ended."""
    app = cli.server.app
    assert app is not None
    window = app[OUTAGES].active(System.PRIMARY)
    if window is not None and window.end is not None:
        await asyncio.sleep((window.end - now()).total_seconds() + 0.01)
    assert app[OUTAGES].active(System.PRIMARY) is None


async def reconcile(cli: Client) -> dict[str, Any]:
    resp = await cli.post("/api/v1/reconcile")
    assert resp.status == 202, await resp.text()
    while True:
        status: dict[str, Any] = await (await cli.get("/api/v1/reconcile/status")).json()
        if not status["running"]:
            return status
        await asyncio.sleep(0.02)


async def test_a_package_taken_during_maintenance_is_queued_answered_and_applied(
        cli: Client) -> None:
    assert (await post(cli, package([vn_invoice(1)])))[0] == 200
    await maintenance(cli, 1.0)
    queued_package = package([vn_invoice(2), vn_invoice(3)], [cancel(1)])
    status, notice = await post(cli, queued_package)
    assert status == 202
    assert (notice["result"], notice["queued"], notice["accepted"]) == ("queued", 3, 0)
    assert [i["result"] for i in notice["items"]] == ["queued"] * 3

    # meanwhile: the queued invoices answer from the journal, the cancellation shows
    for number, expected in ((2, "valid"), (3, "valid"), (1, "cancelled")):
        answer = await lookup(cli, number)
        assert (answer["status"], answer["source"], answer["degraded"],
                answer.get("pending_intake")) == (expected, "replica", True, True)
        assert answer["gap_id"] is None
    again, replayed = await post(cli, queued_package)
    assert (again, replayed["result"]) == (202, "queued")

    await wait_out(cli)
    status_body = await reconcile(cli)
    assert status_body["journal"] == {"pending": 0, "applied": 2, "quarantined": 0}
    assert (status_body["run"]["journal_total"], status_body["run"]["journal_applied"]) == (1, 1)
    for number, expected in ((2, "valid"), (3, "valid"), (1, "cancelled")):
        answer = await lookup(cli, number)
        assert (answer["status"], answer["source"], answer["degraded"]) == (
            expected, "primary", False)
        assert "pending_intake" not in answer
    final_status, final = await post(cli, queued_package)
    assert (final_status, final["result"], final["accepted"]) == (200, "accepted", 3)
    assert final["received_at"] == notice["received_at"]  # the receipt time is kept


async def test_packages_queued_behind_pending_ones_keep_their_order(cli: Client) -> None:
    await maintenance(cli, 0.5)
    assert (await post(cli, package([vn_invoice(10)])))[0] == 202
    await wait_out(cli)
    # the primary is back but an older entry is pending: this one queues behind it, so its
    # cancellation of invoice 10 finds it when both are applied in order
    status, notice = await post(cli, package(notices=[cancel(10)]))
    assert (status, notice["result"]) == (202, "queued")
    await reconcile(cli)
    assert (await lookup(cli, 10))["status"] == "cancelled"


async def test_the_final_notice_decides_what_the_queued_one_could_not(cli: Client) -> None:
    await maintenance(cli, 0.5)
    replacement = vn_invoice(21, kind="replacement", original=vn_key(20))
    status, notice = await post(cli, package([replacement, vn_invoice(1, template="X")]))
    assert status == 202
    first, bad = notice["items"]
    assert first["result"] == "queued"
    assert [w["rule"] for w in first["warnings"]] == ["chain.original.not_found"]
    assert bad["result"] == "rejected"  # step 1 rules are final at once
    assert (await lookup(cli, 21))["pending_intake"] is True
    await wait_out(cli)
    await reconcile(cli)
    status, final = await post(cli, package([replacement, vn_invoice(1, template="X")],
                                            package_id=notice["package_id"]))
    assert (status, final["result"]) == (200, "rejected")
    assert [e["rule"] for e in final["items"][0]["errors"]] == ["chain.original.not_found"]
    answer = await lookup(cli, 21)  # refused when applied: gone from the replica too
    assert (answer["status"], answer["source"]) == ("not_found", "primary")


async def test_after_a_drain_the_replica_holds_what_the_primary_holds(cli: Client) -> None:
    await maintenance(cli, 0.5)
    assert (await post(cli, package([vn_invoice(40), vn_invoice(41)])))[0] == 202
    assert (await post(cli, package(notices=[cancel(40)])))[0] == 202
    orphan = vn_invoice(43, kind="replacement", original=vn_key(42))
    assert (await post(cli, package([orphan])))[0] == 202  # refused when applied
    await wait_out(cli)
    await reconcile(cli)
    app = cli.server.app
    assert app is not None
    replica = app[REPLICA]

    async def held(number: int) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await replica.get(VnKey(**vn_key(number)).doc_id)
        return doc

    cancelled, issued = await held(40), await held(41)
    assert cancelled is not None
    assert issued is not None
    assert (cancelled["lifecycle"], issued["lifecycle"]) == ("cancelled", "issued")
    assert await held(43) is None


@pytest.fixture
async def full_journal_cli(aiohttp_client: Callable[..., Awaitable[Client]],
                           settings: Settings, admin_token: str) -> Client:
    """The app whose journal connection cannot grow its file any more."""
    app = create_app(settings)
    client = await aiohttp_client(app, headers={"Authorization": f"Bearer {admin_token}"})
    journal = app[JOURNALED_INTAKE].journal
    conn = journal._conn  # the fault: cap this connection's file size
    rows = list(await conn.execute_fetchall("PRAGMA page_count"))
    await conn.execute(f"PRAGMA max_page_count = {int(rows[0][0])}")
    return client


async def test_no_journal_and_no_primary_is_503_never_a_silent_drop(
        full_journal_cli: Client) -> None:
    cli = full_journal_cli
    big = package([vn_invoice(n) for n in range(1, 60)])
    # the primary alone still takes it (durable in SQLite) when the journal cannot
    status, notice = await post(cli, big)
    assert (status, notice["result"]) == (200, "accepted")
    await maintenance(cli, 3600)
    other = package([vn_invoice(n) for n in range(100, 160)])
    resp = await cli.post("/api/v1/packages", json=other)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "30"
    body = await resp.json()
    assert body["error"]["code"] == "intake_unavailable"
    answer = await lookup(cli, 100)
    assert answer["status"] == "unconfirmed"  # never stored, never pretended


async def test_an_entry_left_pending_by_a_crash_is_applied_on_the_next_start(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
        admin_token: str) -> None:
    """The crash window: journaled (fsync'd) but never applied. A restart's reconciler
    applies it; applying it twice changes nothing."""
    body = json.dumps(package([vn_invoice(7)], package_id="PKG-CRASH-1")).encode()
    async with open_intake_journal(settings.journal_path) as journal:
        await journal.append(read_submission(body, BodyFormat.JSON, max_items=10),
                             now() - timedelta(minutes=5))
    cli = await aiohttp_client(create_app(settings),
                               headers={"Authorization": f"Bearer {admin_token}"})
    status = await reconcile(cli)
    assert status["journal"] == {"pending": 0, "applied": 1, "quarantined": 0}
    assert (await lookup(cli, 7))["status"] == "valid"
    again = await reconcile(cli)
    assert (again["run"]["journal_total"], again["run"]["journal_applied"]) == (0, 0)
    code, notice = await post(cli, package([vn_invoice(7)], package_id="PKG-CRASH-1"))
    assert (code, notice["result"]) == (200, "accepted")


@pytest.fixture
async def callbacks() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on 127.0.0.1: `/ok` takes callbacks, `/fail` answers 500."""
    received: list[dict[str, Any]] = []

    async def ok(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/fail", fail)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", received
    finally:
        await server.close()


async def test_gaps_resolve_found_or_missing_and_callbacks_are_delivered(
        cli: Client, make_key: KeyMaker,
        callbacks: tuple[str, list[dict[str, Any]]]) -> None:
    base, received = callbacks
    verifier = await make_key("verify")
    await maintenance(cli, 0.5)
    asked: dict[int, dict[str, Any]] = {}
    for number, url in ((31, f"{base}/ok"), (32, f"{base}/ok"), (33, f"{base}/fail")):
        query = {**{k: str(v) for k, v in vn_key(number).items()}, "callback_url": url}
        resp = await cli.get(LOOKUP, params=query, headers=bearer(verifier))
        asked[number] = await resp.json()
        assert asked[number]["status"] == "unconfirmed"
    await wait_out(cli)
    assert (await post(cli, package([vn_invoice(31)])))[0] == 200  # it arrives later
    status = await reconcile(cli)
    run = status["run"]
    assert (run["gaps_total"], run["gaps_found"], run["gaps_missing"]) == (3, 1, 2)
    assert (run["callbacks_sent"], run["callbacks_failed"]) == (2, 1)
    assert status["open_gaps"] == 0

    found = await (await cli.get(f"/api/v1/gaps/{asked[31]['gap_id']}")).json()
    assert (found["status"], found["resolution"]) == ("resolved", "found")
    assert (found["answer"]["status"], found["answer"]["source"]) == ("valid", "primary")
    assert found["requesters"][0]["notified_at"] is not None
    missing = await (await cli.get(f"/api/v1/gaps/{asked[32]['gap_id']}")).json()
    assert (missing["resolution"], missing["answer"]["status"]) == ("missing", "not_found")
    failed = await (await cli.get(f"/api/v1/gaps/{asked[33]['gap_id']}")).json()
    assert failed["requesters"][0]["notified_at"] is None

    by_gap = {r["gap_id"]: r for r in received}
    assert set(by_gap) == {asked[31]["gap_id"], asked[32]["gap_id"]}
    assert by_gap[asked[31]["gap_id"]] | {"resolved_at": None} == {
        "event": "gap.resolved", "gap_id": asked[31]["gap_id"],
        "lookup_key": "vn:0100109106:1:C22TAA:31", "key": vn_key(31),
        "resolution": "found", "status": "valid", "resolved_at": None}
    assert by_gap[asked[32]["gap_id"]]["status"] == "not_found"
    # the failed one waits for its backoff: a run now does not call it again
    assert (await reconcile(cli))["run"]["callbacks_failed"] == 0


async def test_reconcile_endpoints_are_for_admins_and_auditors(
        cli: Client, make_key: KeyMaker) -> None:
    verifier, auditor = await make_key("verify"), await make_key("audit", ["0100109106"])
    assert (await cli.post("/api/v1/reconcile", headers=bearer(verifier))).status == 403
    assert (await cli.post("/api/v1/reconcile", headers=bearer(auditor))).status == 403
    resp = await cli.get("/api/v1/reconcile/status", headers=bearer(auditor))
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"running", "run", "journal", "open_gaps"}
    assert (await cli.get("/api/v1/reconcile/status", headers=bearer(verifier))).status == 403


async def test_cli_reconcile_drains_what_the_service_queued(
        cli: Client, settings: Settings) -> None:
    await maintenance(cli, 0.3)
    assert (await post(cli, package([vn_invoice(41)])))[0] == 202
    await wait_out(cli)
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["reconcile", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 0, result.output
    assert "1 of 1 entries applied" in result.output
    # the service's next run notices the drained journal (data_version) and finds no work
    assert (await reconcile(cli))["run"]["journal_total"] == 0
    answer = await lookup(cli, 41)
    assert (answer["status"], answer["source"], "pending_intake" in answer) == (
        "valid", "primary", False)
    async with open_intake_journal(settings.journal_path) as journal:
        assert await journal.counts() == {"pending": 0, "applied": 1, "quarantined": 0}


async def test_authority_code_lookups_answer_queued_invoices(cli: Client) -> None:
    await maintenance(cli, 3600)
    assert (await post(cli, package([vn_invoice(51)])))[0] == 202
    resp = await cli.get(LOOKUP, params={"authority_code": authority_code(51)})
    answer = await resp.json()
    assert (answer["status"], answer["pending_intake"]) == ("valid", True)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_reconcile_loop_beats_its_heartbeat_until_stopped(tmp_path: Path,
                                                          signum: signal.Signals) -> None:
    """The compose reconciler's command, as a real process: it touches the heartbeat file
    after every check and stops cleanly on SIGINT or SIGTERM (`docker compose stop`). It is
    started with SIGINT ignored, as a non-interactive shell starts a background job: the
    loop must not depend on the disposition it inherits."""
    heartbeat = tmp_path / "beat" / "reconciler.heartbeat"
    exe = Path(sys.executable).with_name("invoice-verify")
    env = {**os.environ, "INVOICE_DATA_DIR": str(tmp_path / "data")}
    env.pop("INVOICE_ES_URL", None)
    env.pop("INVOICE_REDIS_URL", None)
    proc = subprocess.Popen([str(exe), "reconcile", "--loop", "--interval", "0.2",
                             "--heartbeat", str(heartbeat)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_ignore_sigint)
    try:
        deadline = time.monotonic() + 60
        while not heartbeat.exists():
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "no heartbeat within 60 s"
            time.sleep(0.1)
        first = heartbeat.stat().st_mtime_ns
        while heartbeat.stat().st_mtime_ns == first:
            assert time.monotonic() < deadline, "the heartbeat did not beat again"
            time.sleep(0.1)
    finally:
        proc.send_signal(signum)
        try:
            output = proc.communicate(timeout=20)[0].decode()
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, output


async def test_replica_answers_say_when_their_copy_was_written(cli: Client) -> None:
    before = now()
    assert (await post(cli, package([vn_invoice(61)])))[0] == 200
    after = now()
    await maintenance(cli, 3600)
    await asyncio.sleep(0.05)
    answer = await lookup(cli, 61)
    assert (answer["source"], answer["degraded"]) == ("replica", True)
    as_of = datetime.fromisoformat(answer["as_of"])
    assert before <= as_of <= after  # the write-through time, not the time of asking


async def test_no_manual_run_while_the_primary_is_in_maintenance(
        cli: Client, settings: Settings) -> None:
    await maintenance(cli, 3600)
    assert (await post(cli, package([vn_invoice(71)])))[0] == 202
    resp = await cli.post("/api/v1/reconcile")
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "primary_unavailable"
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["reconcile", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 1
    assert "the primary is unavailable" in result.output
    async with open_intake_journal(settings.journal_path) as journal:
        assert (await journal.counts())["pending"] == 1


async def test_a_locked_store_file_queues_intake_instead_of_failing(
        cli: Client, settings: Settings) -> None:
    """Another process holds the SQLite file's write lock past the busy timeout (5 s): the
    store answers `SqliteUnavailable`, so the package is queued (202), not a 500; lookups
    keep reading (WAL readers are not blocked); after the lock goes, it is applied."""
    assert (await post(cli, package([vn_invoice(81)])))[0] == 200
    holder = sqlite3.connect(settings.sqlite_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        status, notice = await post(cli, package([vn_invoice(82)]))
        assert (status, notice["result"]) == (202, "queued")
        answer = await lookup(cli, 81)
        assert (answer["status"], answer["source"]) == ("valid", "primary")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    status_body = await reconcile(cli)
    assert status_body["journal"]["pending"] == 0
    assert (await lookup(cli, 82))["source"] == "primary"


async def test_a_restarted_service_warms_its_memory_replica_from_the_primary(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
        admin_token: str, cli: Client) -> None:
    assert (await post(cli, package([vn_invoice(91), vn_invoice(92)])))[0] == 200
    app = create_app(settings)  # a second process on the same data directory
    restarted = await aiohttp_client(app, headers={"Authorization": f"Bearer {admin_token}"})
    replica = app[REPLICA]
    assert isinstance(replica, MemoryReplica)
    deadline = time.monotonic() + 30
    while len(replica) < 2:
        assert time.monotonic() < deadline, "the replica was not warmed"
        await asyncio.sleep(0.05)
    await maintenance(restarted, 3600)
    answer = await lookup(restarted, 92)
    assert (answer["status"], answer["source"]) == ("valid", "replica")


async def test_the_drain_works_in_batches_of_the_configured_size_and_keeps_order(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
        admin_token: str) -> None:
    """INVOICE_RECONCILE_BATCH_ENTRIES / _BYTES reach the service's reconciler; a backlog
    several batches long drains whole, in journal order (a later package's cancellation of
    an invoice queued in an earlier batch lands on it)."""
    env = {"INVOICE_DATA_DIR": str(settings.data_dir), "INVOICE_GAP_GRACE_HOURS": "0",
           "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600",
           "INVOICE_RECONCILE_BATCH_ENTRIES": "3", "INVOICE_RECONCILE_BATCH_BYTES": "100000"}
    small = Settings.from_env(env)
    app = create_app(small)
    cli = await aiohttp_client(app, headers={"Authorization": f"Bearer {admin_token}"})
    assert (app[RECONCILER].batch, app[RECONCILER].batch_bytes) == (3, 100_000)
    seen: list[int] = []
    app[RECONCILER].on_progress = lambda p: seen.append(p.journal_applied)
    await maintenance(cli, 1.0)
    for n in range(1, 8):
        assert (await post(cli, package([vn_invoice(60 + n)], package_id=f"PKG-B{n}")))[0] \
            == 202
    assert (await post(cli, package([], [cancel(61)], package_id="PKG-B8")))[0] == 202
    await wait_out(cli)
    status = await reconcile(cli)
    assert status["journal"] == {"pending": 0, "applied": 8, "quarantined": 0}
    assert sorted(set(seen)) == [0, 3, 6, 8]  # three batches of at most three entries
    assert (await lookup(cli, 61))["status"] == "cancelled"
    for n in range(2, 8):
        assert (await lookup(cli, 60 + n))["status"] == "valid"
