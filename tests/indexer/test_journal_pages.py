"""The reconciler reads the intake journal a page at a time: at most `limit` entries and, with
`max_bytes`, no more bodies than that budget (large packages make small pages, and a page is
never empty while something is pending). Applied entries leave with their pending
documents when they are pruned."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from indexer.journal import LOAD_PENDING_DOCS, IntakeJournal, open_intake_journal
from indexer.submission import BodyFormat, read_submission
from tests.factories import package, vn_invoice


async def _append(journal: IntakeJournal, n: int, invoices: int) -> int:
    data = package([vn_invoice(n * 100 + i + 1) for i in range(invoices)],
                   package_id=f"PKG-PAGE-{n}")
    body = json.dumps(data).encode()
    await journal.append(read_submission(body, BodyFormat.JSON, max_items=1000),
                         datetime.now(UTC))
    return len(body)


async def _pages(journal: IntakeJournal, *, limit: int,
                 max_bytes: int | None) -> list[list[str]]:
    pages: list[list[str]] = []
    after = 0
    while page := await journal.pending(after=after, limit=limit, max_bytes=max_bytes):
        pages.append([e.package_id for e in page])
        after = page[-1].seq
    return pages


@pytest.fixture
async def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with open_intake_journal(tmp_path / "journal.sqlite3") as journal:
        yield journal


async def test_pages_keep_journal_order_within_the_entry_limit(journal: IntakeJournal) -> None:
    for n in range(7):
        await _append(journal, n, 1)
    ids = [f"PKG-PAGE-{n}" for n in range(7)]
    assert await _pages(journal, limit=3, max_bytes=None) == [ids[:3], ids[3:6], ids[6:]]
    assert await _pages(journal, limit=3, max_bytes=10**9) == [ids[:3], ids[3:6], ids[6:]]


async def test_a_page_stops_once_its_bodies_reach_the_byte_budget(
        journal: IntakeJournal) -> None:
    sizes = [await _append(journal, n, invoices)
             for n, invoices in enumerate([1, 1, 40, 1, 1, 1, 40, 40])]
    small, large = sizes[0], sizes[2]
    assert large > 10 * small
    pages = await _pages(journal, limit=100, max_bytes=3 * small)
    # bodies before the last entry of a page stay under the budget; the first always fits
    assert pages == [["PKG-PAGE-0", "PKG-PAGE-1", "PKG-PAGE-2"],
                     ["PKG-PAGE-3", "PKG-PAGE-4", "PKG-PAGE-5"],
                     ["PKG-PAGE-6"], ["PKG-PAGE-7"]]
    # a budget smaller than any body still makes progress, one entry at a time
    assert await _pages(journal, limit=100, max_bytes=1) == [[f"PKG-PAGE-{n}"]
                                                             for n in range(8)]


async def test_applied_entries_are_not_counted_in_the_budget(journal: IntakeJournal) -> None:
    sizes = [await _append(journal, n, 1) for n in range(4)]
    first = (await journal.pending(limit=1))[0]
    await journal.mark_applied(first.seq, {"result": "accepted"}, datetime.now(UTC))
    page = await journal.pending(after=0, limit=100, max_bytes=2 * sizes[0])
    assert [e.package_id for e in page] == ["PKG-PAGE-1", "PKG-PAGE-2"]


def _doc(n: int) -> dict[str, object]:
    return {"doc_id": f"vn:0100109106:1:C22TAA:{n}", "authority_code": f"CODE{n:030d}"}


async def test_applied_entries_answer_no_pending_documents_now_or_after_a_restart(
        tmp_path: Path) -> None:
    """Marking an entry applied leaves its pending documents in the file until `prune`
    (deleting them is not the drain's business); nobody reads them as pending any more."""
    path = tmp_path / "journal.sqlite3"
    async with open_intake_journal(path) as journal:
        for n in (1, 2):
            body = json.dumps(package([vn_invoice(n)], package_id=f"PKG-DOC-{n}")).encode()
            await journal.append(read_submission(body, BodyFormat.JSON, max_items=10),
                                 datetime.now(UTC), pending_docs=[_doc(n)])
        first, second = await journal.pending()
        assert journal.pending_doc(str(_doc(1)["doc_id"])) is not None
        await journal.mark_applied(first.seq, {"result": "accepted"}, datetime.now(UTC))
        assert journal.pending_doc(str(_doc(1)["doc_id"])) is None
        assert journal.pending_doc_by_code(str(_doc(1)["authority_code"])) is None
    async with open_intake_journal(path) as journal:
        assert journal.pending_count == 1
        assert journal.pending_doc(str(_doc(1)["doc_id"])) is None
        assert journal.pending_doc(str(_doc(2)["doc_id"])) is not None
        assert await journal.pending_doc_ids_many([second.seq]) == [_doc(2)["doc_id"]]


async def test_prune_removes_applied_entries_with_their_documents(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    async with open_intake_journal(path) as journal:
        for n in (1, 2, 3):
            body = json.dumps(package([vn_invoice(n)], package_id=f"PKG-PRUNE-{n}")).encode()
            await journal.append(read_submission(body, BodyFormat.JSON, max_items=10),
                                 datetime.now(UTC), pending_docs=[_doc(n)])
        entries = await journal.pending()
        applied_at = datetime(2026, 1, 1, tzinfo=UTC)
        await journal.mark_applied_many([(e.seq, {"result": "accepted"}) for e in entries[:2]],
                                        applied_at)
        assert await journal.prune(applied_at) == 0  # applied at, not before: kept
        assert await journal.get("PKG-PRUNE-1") is not None
        assert await journal.prune(datetime(2026, 1, 2, tzinfo=UTC)) == 2
        assert await journal.get("PKG-PRUNE-1") is None
        assert await journal.get("PKG-PRUNE-3") is not None
        assert journal.pending_doc(str(_doc(3)["doc_id"])) is not None
    with sqlite3.connect(path) as conn:
        left = conn.execute("SELECT seq FROM pending_docs").fetchall()
    assert left == [(entries[2].seq,)]


async def test_a_reload_reads_only_the_documents_of_pending_entries(tmp_path: Path) -> None:
    """Applied entries' documents wait in the file for `prune`; loading the pending state
    (at start, and on every `refresh` after another process wrote) must not scan them."""
    path = tmp_path / "journal.sqlite3"
    async with open_intake_journal(path):
        pass
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1])
                        for row in conn.execute("EXPLAIN QUERY PLAN " + LOAD_PENDING_DOCS))
    conn.close()
    assert "SCAN p" not in plan, plan
    assert "entries_pending" in plan, plan


async def test_a_queued_notice_never_replaces_a_final_one(tmp_path: Path) -> None:
    """The service's direct intake timed out while another process's reconciler applied the
    same entry: keeping the queued notice then must not overwrite the final one."""
    async with open_intake_journal(tmp_path / "journal.sqlite3") as journal:
        body = json.dumps(package([vn_invoice(1)], package_id="PKG-RACE")).encode()
        seq = await journal.append(read_submission(body, BodyFormat.JSON, max_items=10),
                                   datetime.now(UTC))
        await journal.mark_applied(seq, {"result": "accepted"}, datetime.now(UTC))
        kept = await journal.set_provisional(seq, {"result": "queued"}, [_doc(1)],
                                             datetime.now(UTC))
        assert kept is False
        entry = await journal.get("PKG-RACE")
        assert entry is not None
        assert entry.notice == {"result": "accepted"}
        assert journal.pending_doc(str(_doc(1)["doc_id"])) is None
