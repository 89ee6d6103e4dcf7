"""The reconciler prepares its next batch of journal entries (parse, step-1 rules) while the
one before is committed: through the real embedded app (SQLite primary, real journal), each
entry is still judged against the primary as it stands after every entry before it, and a
primary failing midway leaves the prepared batch pending, applied by the next run."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fallback.outages import System
from fallback.reconciler import ReconcileProgress, Reconciler
from indexer.intake import BatchItem, Intake
from indexer.package import package_from_json
from indexer.rules import RuleConfig
from indexer.store.sqlite import open_sqlite_store
from tests.conftest import Client
from tests.factories import cancel, package, vn_invoice, vn_key
from tests.indexer.store.test_batch_commit_contract import notices
from verify.keys import GAPS, JOURNALED_INTAKE, OUTAGES, RECONCILER
from verify.reconciling import reconciler
from verify.settings import Settings

RECEIVED = datetime(2022, 5, 16, 3, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_GAP_GRACE_HOURS": "0",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600"})


def chained() -> list[dict[str, Any]]:
    """Each package builds on the one before it: a batch of one entry is prepared before
    the entry it depends on is committed."""
    return [
        package([vn_invoice(1), vn_invoice(2)], package_id="AHEAD-1"),
        package(notices=[cancel(1)], package_id="AHEAD-2"),
        package([vn_invoice(3), vn_invoice(6, kind="replacement", original=vn_key(2))],
                package_id="AHEAD-3"),
        package([vn_invoice(4, kind="adjustment", original=vn_key(3))],
                package_id="AHEAD-4"),
        package(notices=[cancel(1, notice_id="04SS-2022-0002")], package_id="AHEAD-5"),
    ]


async def queue_all(cli: Client, bodies: list[dict[str, Any]]) -> None:
    app = cli.server.app
    assert app is not None
    now = datetime.now(UTC)
    await app[OUTAGES].declare(System.PRIMARY, now - timedelta(minutes=1),
                               now + timedelta(seconds=0.3), "tests", "tests")
    for body in bodies:
        resp = await cli.post("/api/v1/packages", json=body)
        assert resp.status == 202, await resp.text()
    window = app[OUTAGES].active(System.PRIMARY)
    if window is not None and window.end is not None:
        await asyncio.sleep((window.end - datetime.now(UTC)).total_seconds() + 0.01)
    assert app[OUTAGES].active(System.PRIMARY) is None


def small_batches(cli: Client, settings: Settings, **kwargs: Any) -> Reconciler:
    app = cli.server.app
    assert app is not None
    rec = reconciler(settings, app[JOURNALED_INTAKE], app[GAPS], **kwargs)
    rec.batch = 1
    return rec


async def final_notices(cli: Client, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for body in bodies:  # a re-post is answered from the journal: the final notice
        resp = await cli.post("/api/v1/packages", json=body)
        assert resp.status == 200, await resp.text()
        out.append(await resp.json())
    return out


async def test_each_entry_is_judged_after_the_ones_before_it(
        cli: Client, settings: Settings) -> None:
    bodies = chained()
    await queue_all(cli, bodies)
    progress = await small_batches(cli, settings).run()
    assert (progress.journal_applied, progress.stopped_by) == (5, None)
    notices = await final_notices(cli, bodies)
    assert [n["result"] for n in notices] == ["accepted"] * 4 + ["rejected"]
    assert [e["rule"] for e in notices[4]["items"][0]["errors"]] == [
        "notice.target.not_in_force"]
    app = cli.server.app
    assert app is not None
    async with open_sqlite_store(settings.sqlite_path) as store:
        stored = await store.get_invoices(f"vn:0100109106:1:C22TAA:{n}" for n in range(1, 7))
    assert {d.rsplit(":", 1)[1]: i.lifecycle.value for d, i in stored.items()} == {
        "1": "cancelled", "2": "replaced", "3": "adjusted", "4": "issued", "6": "issued"}
    assert app[RECONCILER].journal.pending_count == 0


async def test_a_primary_failing_midway_leaves_the_prepared_batch_pending(
        cli: Client, settings: Settings) -> None:
    """After the first entry is applied another connection takes the store's write lock:
    the next commit fails (busy timeout), the run stops, the batch prepared ahead is
    dropped unapplied; the next run applies the rest, in order."""
    bodies = chained()
    await queue_all(cli, bodies)
    holder = sqlite3.connect(settings.sqlite_path, isolation_level=None)

    def lock_after_first(p: ReconcileProgress) -> None:
        if p.journal_applied == 1 and not holder.in_transaction:
            holder.execute("BEGIN EXCLUSIVE")

    try:
        stopped = await small_batches(cli, settings, on_progress=lock_after_first).run()
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    assert stopped.journal_applied == 1
    assert "applying journal entries from 2" in (stopped.stopped_by or "")
    app = cli.server.app
    assert app is not None
    journal = app[RECONCILER].journal
    assert (await journal.counts())["pending"] == 4
    failed = await journal.pending(limit=1)
    assert (failed[0].package_id, failed[0].attempts) == ("AHEAD-2", 1)

    resumed = await small_batches(cli, settings).run()
    assert (resumed.journal_applied, resumed.stopped_by) == (4, None)
    notices = await final_notices(cli, bodies)
    assert [n["result"] for n in notices] == ["accepted"] * 4 + ["rejected"]


def batch_items(bodies: list[dict[str, Any]]) -> list[BatchItem]:
    return [BatchItem(package_from_json(b), RECEIVED + timedelta(seconds=n))
            for n, b in enumerate(bodies)]


async def test_step_one_done_ahead_judges_like_ingest_many(tmp_path: Path) -> None:
    """`Intake.check_many` reads no store: a batch checked before the batch it builds on is
    committed is judged, when ingested, against the store after that commit; and exactly
    as `ingest_many` judges it unchecked."""
    first, second = batch_items(chained()[:2]), batch_items(chained()[2:])
    async with open_sqlite_store(tmp_path / "a.sqlite3") as store:
        intake = Intake(store, RuleConfig())
        ahead = await intake.check_many(second, pause_every=1)
        await intake.ingest_many(first)
        judged_ahead = notices(await intake.ingest_many(ahead))
    async with open_sqlite_store(tmp_path / "b.sqlite3") as store:
        intake = Intake(store, RuleConfig())
        await intake.ingest_many(first)
        judged_after = notices(await intake.ingest_many(second))
    assert judged_ahead == judged_after
    assert [n["result"] for n in judged_ahead] == ["accepted", "accepted", "rejected"]
