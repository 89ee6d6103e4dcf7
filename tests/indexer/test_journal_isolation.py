"""The intake journal's readers never see another coroutine's open transaction: an entry
whose append rolls back was never acknowledged, and nothing may read it as pending (the
reconciler would apply it) or as journaled (a re-post would be answered from it)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from indexer.journal import JournalEntry, open_intake_journal
from indexer.submission import BodyFormat, read_submission
from tests.verify.test_intake_journal import package, vn_invoice


async def test_readers_never_see_an_append_that_rolls_back(tmp_path: Path) -> None:
    seen: list[JournalEntry] = []
    async with open_intake_journal(tmp_path / "journal.sqlite3") as journal:
        for n in range(60):
            body = json.dumps(package([vn_invoice(n + 1)], package_id=f"PKG-R{n}")).encode()
            submission = read_submission(body, BodyFormat.JSON, max_items=10)
            # A pending document without a doc id fails after the entry row is inserted.
            append = asyncio.create_task(journal.append(
                submission, datetime.now(UTC), pending_docs=[{"not": "a document"}]))
            while not append.done():
                seen.extend(await journal.pending())
                found = await journal.get(f"PKG-R{n}")
                if found is not None:
                    seen.append(found)
            with pytest.raises(KeyError):
                await append
        assert await journal.pending() == []
    assert seen == []
