"""The journal's schema v0 -> v1 (issue 15: the `quarantined` state): a file of an older
release is rebuilt in place, its entries and sequence counter kept and its failure counts
reset (v0 counted transient failures too); two processes opening it at once migrate it once;
quarantine, retry and drop keep the in-memory pending state in step with the file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from indexer.journal import JOURNAL_VERSION, EntryState, open_intake_journal
from indexer.submission import BodyFormat, Submission, read_submission
from tests.factories import package, vn_invoice
from tests.verify.test_journal_quarantine import _V0_JOURNAL


def submission(n: int) -> Submission:
    body = json.dumps(package([vn_invoice(n)], package_id=f"PKG-M{n}")).encode()
    return read_submission(body, BodyFormat.JSON, max_items=10)


def v0_file(path: Path) -> None:
    """Entries 1 (applied) and 2 (pending, 41 failures counted), the counter at 15 (later
    entries were pruned)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # as every release opened it
        conn.executescript(_V0_JOURNAL)
        for seq, state in ((1, "applied"), (2, "pending")):
            sub = submission(seq)
            conn.execute("INSERT INTO entries (seq, package_id, sender, digest, format, body,"
                         " received_at, state, attempts, last_error) VALUES"
                         " (?, ?, ?, ?, 'json', ?, ?, ?, 41, 'StoreUnavailable')",
                         (seq, sub.package.package_id, sub.package.sender, sub.package.digest,
                          sub.body, datetime.now(UTC).isoformat(), state))
        conn.execute("UPDATE sqlite_sequence SET seq = 15 WHERE name = 'entries'")


async def test_a_v0_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    v0_file(path)
    async with open_intake_journal(path) as journal:
        assert await journal.counts() == {"pending": 1, "applied": 1, "quarantined": 0}
        [pending] = await journal.pending()
        assert (pending.seq, pending.attempts, pending.last_error) == (2, 0, "StoreUnavailable")
        assert await journal.append(submission(3), datetime.now(UTC)) == 16
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == JOURNAL_VERSION
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries'")}
    assert {"entries_pending", "entries_applied", "entries_quarantined"} <= indexes


async def test_two_processes_opening_a_v0_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    v0_file(path)

    async def open_and_count() -> dict[str, int]:
        async with open_intake_journal(path) as journal:
            return await journal.counts()

    counts = await asyncio.gather(*(open_and_count() for _ in range(4)))
    assert counts == [{"pending": 1, "applied": 1, "quarantined": 0}] * 4


async def test_quarantine_retry_and_drop_keep_memory_and_file_in_step(tmp_path: Path) -> None:
    async with open_intake_journal(tmp_path / "journal.sqlite3") as journal:
        doc = {"doc_id": "vn:0100109106:1:C22TAA:9", "authority_code": None}
        seq = await journal.append(submission(9), datetime.now(UTC), pending_docs=[doc])
        assert journal.pending_doc(doc["doc_id"]) is not None
        assert await journal.note_failure(seq, "ValueError: x") == 1
        assert await journal.note_failure(seq, "TimeoutError", counts=False) == 1
        assert await journal.quarantine(seq, {"result": "rejected"}, datetime.now(UTC))
        assert not await journal.quarantine(seq, {"result": "rejected"}, datetime.now(UTC))
        assert (journal.pending_count, journal.pending_doc(doc["doc_id"])) == (0, None)
        assert [e.seq for e in await journal.entries(EntryState.QUARANTINED)] == [seq]
        assert await journal.retry(seq)
        assert not await journal.retry(seq)  # pending now, not quarantined
        entry = await journal.entry(seq)
        assert entry is not None
        assert (entry.state, entry.attempts, entry.notice) == (EntryState.PENDING, 0, None)
        assert journal.pending_count == 1
        assert journal.pending_doc(doc["doc_id"]) is not None  # answered from here again
        assert not await journal.drop(seq)  # only quarantined entries are dropped
        await journal.quarantine(seq, {"result": "rejected"}, datetime.now(UTC))
        assert await journal.drop(seq)
        assert await journal.entry(seq) is None
        assert await journal.counts() == {"pending": 0, "applied": 0, "quarantined": 0}
