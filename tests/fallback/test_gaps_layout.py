"""The gap ledger's file through `migrate`: files from before the numbering (version 0: the
first release's layout, or the one that added columns when it found them missing at each
open) and new files all reach version 1 with the current columns, keeping their gaps; two
processes opening an old file at once migrate it once (column sniffing at each open could
race: both saw a column missing, the second ALTER failed)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fallback.gaps import _SCHEMA, GapOutcome, GapStatus, Resolution, open_gap_ledger
from tests.fallback.test_breaker import FakeClock

#: The layout of the first release (commit 56858b8), before answers and callback retries.
FIRST_RELEASE = """
CREATE TABLE gaps (
    id TEXT PRIMARY KEY, lookup_key TEXT NOT NULL, scheme TEXT NOT NULL,
    key_json TEXT NOT NULL, seller_tax_id TEXT, issued_on TEXT, reason TEXT NOT NULL,
    outage_id INTEGER, status TEXT NOT NULL, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, count INTEGER NOT NULL, resolved_at REAL, resolution TEXT);
CREATE UNIQUE INDEX gaps_one_open ON gaps (lookup_key) WHERE status = 'open';
CREATE INDEX gaps_seller ON gaps (seller_tax_id);
CREATE TABLE gap_requesters (
    gap_id TEXT NOT NULL REFERENCES gaps (id), key_id TEXT NOT NULL, callback_url TEXT,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, count INTEGER NOT NULL,
    notified_at REAL, PRIMARY KEY (gap_id, key_id)) WITHOUT ROWID;
CREATE INDEX gap_requesters_key ON gap_requesters (key_id);
"""
LAYOUTS = {"first_release": FIRST_RELEASE, "unnumbered_current": _SCHEMA}
GAP_ID = "gap_0190000000001234abcd"


def old_file(path: Path, layout: str) -> None:
    """A version-0 file holding one open gap asked by one requester with a callback."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(layout)
        conn.execute(
            "INSERT INTO gaps (id, lookup_key, scheme, key_json, seller_tax_id, issued_on,"
            " reason, outage_id, status, first_seen, last_seen, count) VALUES (?, 'vn:k',"
            " 'vn', '{\"number\": 7}', '0100109106', NULL, 'primary_down', NULL, 'open',"
            " 1.0, 2.0, 3)", (GAP_ID,))
        conn.execute("INSERT INTO gap_requesters (gap_id, key_id, callback_url, first_seen,"
                     " last_seen, count) VALUES (?, 'key_a', 'https://a.example/cb', 1.0,"
                     " 2.0, 3)", (GAP_ID,))
    conn.close()


def columns_and_version(path: Path) -> tuple[set[str], int]:
    with sqlite3.connect(path) as conn:
        columns = {f"{t}.{r[1]}" for t in ("gaps", "gap_requesters")
                   for r in conn.execute("SELECT * FROM pragma_table_info(?)", (t,))}
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.close()
    return columns, version


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_an_unnumbered_file_keeps_its_gaps_and_gets_the_current_columns(
        tmp_path: Path, layout: str) -> None:
    path = tmp_path / "gaps.sqlite3"
    old_file(path, LAYOUTS[layout])
    clock = FakeClock()
    async with open_gap_ledger(path, clock=clock) as ledger:
        gap = await ledger.get(GAP_ID)
        assert gap is not None
        assert (gap.count, gap.key, [r.callback_url for r in gap.requesters]) == (
            3, {"number": 7}, ["https://a.example/cb"])
        assert await ledger.resolve_many([Resolution(GAP_ID, GapOutcome.FOUND, {"ok": 1})]) == 1
        [due] = await ledger.due_callbacks(max_attempts=3)
        await ledger.callback_failed(GAP_ID, "key_a", "timeout",
                                     datetime.fromtimestamp(0) + timedelta(days=1))
        assert (due.attempts, due.gap.answer) == (0, {"ok": 1})
        assert await ledger.count(GapStatus.RESOLVED) == 1
    async with open_gap_ledger(tmp_path / "new.sqlite3"):
        pass
    assert columns_and_version(path) == columns_and_version(tmp_path / "new.sqlite3")
    assert columns_and_version(path)[1] == 1


async def test_two_ledgers_opening_a_first_release_file_at_once_migrate_it_once(
        tmp_path: Path) -> None:
    path = tmp_path / "gaps.sqlite3"
    old_file(path, FIRST_RELEASE)

    async def open_and_count() -> int:
        async with open_gap_ledger(path) as ledger:
            return await ledger.count(GapStatus.OPEN)

    assert await asyncio.gather(*(open_and_count() for _ in range(4))) == [1] * 4
    assert "gap_requesters.notify_attempts" in columns_and_version(path)[0]
