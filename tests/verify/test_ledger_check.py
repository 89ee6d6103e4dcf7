"""`LineChecker` when the primary fails mid-report: the batch read and the scan are guarded
like lookups, lines fall back to the lookup path (replica, gaps), and the not-in-ledger
section says it was not checked. A real SQLite store wrapped to fail on demand, real outage
log, gap ledger and in-memory replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fallback.breaker import BreakerConfig, CircuitBreaker
from fallback.gaps import GapStatus, open_gap_ledger
from fallback.health import DependencyGuard
from fallback.lookup.resilience import Resilience
from fallback.outages import System, WindowKind, open_outage_log
from fallback.replica import MemoryReplica
from fallback.replica_docs import replica_doc
from indexer.codec import invoice_to_doc
from indexer.journal import PendingDoc
from indexer.keys import VnKey
from indexer.ledger_file import LedgerRow, LedgerTable
from indexer.model import Amounts, Invoice, Lifecycle, Relation, RelationKind
from indexer.rules import RuleConfig
from indexer.store import StoredPackage
from indexer.store.protocol import IssuedPosition, StoreUnavailableError
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from tests.factories import BUYER, SELLER
from verify.reports.ledger_check import (
    LedgerScope,
    LedgerTotals,
    LineChecker,
    check_lines,
    not_in_ledger,
)
from verify.reports.ledger_lines import parse_lines

VN_TZ = timezone(timedelta(hours=7))
MAY = LedgerScope(BUYER, date(2022, 5, 1), date(2022, 6, 1))


class Down(StoreUnavailableError):
    pass


@dataclass
class FailingStore:
    """The real store, whose reads fail while `down` is set (the primary gone)."""

    inner: SqliteStore
    down: bool = False
    backend: str = "sqlite"
    reads_inline: bool = False  # a timeout is armed around its reads

    def _check(self) -> None:
        if self.down:
            raise Down("primary unreachable")

    async def get_invoice(self, doc_id: str) -> Invoice | None:
        self._check()
        return await self.inner.get_invoice(doc_id)

    async def get_invoices(self, doc_ids: Iterable[str]) -> dict[str, Invoice]:
        self._check()
        return await self.inner.get_invoices(doc_ids)

    async def scan_buyer_invoices(self, buyer_tax_id: str, issued_from: date,
                                  issued_until: date, *, after: IssuedPosition | None = None,
                                  limit: int = 1000) -> list[Invoice]:
        self._check()
        return await self.inner.scan_buyer_invoices(buyer_tax_id, issued_from, issued_until,
                                                    after=after, limit=limit)


def invoice(number: int) -> Invoice:
    return Invoice(key=VnKey(SELLER, "1", "C22TAA", number),
                   issued_at=datetime(2022, 5, 15, 9, tzinfo=VN_TZ), currency="VND",
                   amounts=Amounts(Decimal(100), Decimal(10), Decimal(110)),
                   package_id="PKG-L", seller_tax_id=SELLER, buyer_tax_id=BUYER)


@dataclass
class World:
    store: FailingStore
    resilience: Resilience


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with open_sqlite_store(tmp_path / "invoices.sqlite3") as sqlite, \
            open_outage_log(tmp_path / "outages.sqlite3") as outages, \
            open_gap_ledger(tmp_path / "gaps.sqlite3") as gaps:
        invoices = [invoice(n) for n in (1, 2, 3)]
        await sqlite.commit_package(StoredPackage(
            "PKG-L", "0101300842", "d" * 64, datetime(2026, 1, 1, tzinfo=VN_TZ), {}),
            invoices, [])
        replica = MemoryReplica()
        await replica.put_many([replica_doc(invoices[0])])  # the replica holds only no. 1
        store = FailingStore(sqlite)
        config = BreakerConfig(failure_threshold=2, open_seconds=60)
        resilience = Resilience(
            store, replica,  # type: ignore[arg-type]  # the store methods a report reads
            DependencyGuard(System.PRIMARY, CircuitBreaker("primary", config), outages),
            DependencyGuard(System.REPLICA, CircuitBreaker("replica", config), outages),
            outages, gaps, primary_timeout=1.0, intake_lag=timedelta(hours=24))
        yield World(store, resilience)


def ledger(*numbers: int) -> list[Any]:
    rows = tuple(LedgerRow(i + 2, {"seller_tax_id": SELLER, "template": "1",
                                   "series": "C22TAA", "number": str(n),
                                   "total_amount": "110"})
                 for i, n in enumerate(numbers))
    return list(parse_lines(LedgerTable("csv", {}, (), rows), BUYER, RuleConfig()))


async def run(world: World, lines: list[Any]) -> tuple[list[dict[str, Any]],
                                                      list[dict[str, Any]], LedgerTotals]:
    checker = LineChecker(world.resilience, "k_auditor")
    totals = LedgerTotals()
    checked = [r async for chunk in check_lines(lines, checker, totals) for r in chunk]
    unlisted = [e async for page in not_in_ledger(MAY, {ln.doc_id for ln in lines}, checker,
                                                   totals) for e in page]
    return checked, unlisted, totals


async def test_a_healthy_primary_answers_everything_in_batches(world: World) -> None:
    checked, unlisted, totals = await run(world, ledger(1, 2, 9))
    assert [(r["status"], r["source"]) for r in checked] == [
        ("valid", "primary"), ("valid", "primary"), ("not_found", "primary")]
    assert [e["id"] for e in unlisted] == [invoice(3).doc_id]
    assert totals.not_in_ledger_checked


async def test_a_failing_primary_falls_back_line_by_line_and_skips_the_scan(
        world: World) -> None:
    world.store.down = True
    checked, unlisted, totals = await run(world, ledger(1, 2, 9))
    assert [(r["status"], r["source"], r["degraded"], r["reason"]) for r in checked] == [
        ("valid", "replica", True, None),  # the replica holds it
        ("unconfirmed", "replica", True, "primary_down"),  # it does not: never not_found
        ("unconfirmed", "replica", True, "primary_down")]
    assert (unlisted, totals.not_in_ledger_checked) == ([], False)
    r = world.resilience
    assert r.primary.breaker.state == "open"  # the batch read and the lines counted
    window = r.outages.detected(System.PRIMARY)
    assert window is not None
    assert window.kind is WindowKind.DETECTED
    gaps = await r.gaps.list(status=GapStatus.OPEN)
    assert {(g.lookup_key, g.reason, g.outage_id) for g in gaps} == {
        (invoice(2).doc_id, "primary_down", window.id), (VnKey(SELLER, "1", "C22TAA", 9).doc_id,
                                                         "primary_down", window.id)}
    assert {r.key_id for g in gaps for r in g.requesters} == {"k_auditor"}


@dataclass
class QueuedChanges:
    """The intake journal's pending state (`fallback.lookup.resilience.PendingSource`): documents of
    packages queued while the primary could not take them."""

    docs: dict[str, PendingDoc]

    @property
    def pending_count(self) -> int:
        return len(self.docs)

    def pending_doc(self, doc_id: str) -> PendingDoc | None:
        return self.docs.get(doc_id)

    def pending_doc_by_code(self, code: str) -> PendingDoc | None:
        return None


async def test_a_state_queued_in_the_journal_wins_over_the_batch_read(world: World) -> None:
    cancelled = replace(invoice(2), lifecycle=Lifecycle.CANCELLED, relations=(
        Relation(RelationKind.CANCELLED_BY, notice_id="04SS-2022-0009", reason="wrong"),))
    queued_at = datetime(2026, 11, 1, tzinfo=UTC)
    world.resilience.journal = QueuedChanges(
        {cancelled.doc_id: PendingDoc(7, queued_at, invoice_to_doc(cancelled))})
    checked, _, _ = await run(world, ledger(1, 2))
    assert [(r["status"], r["source"], r["as_of"]) for r in checked] == [
        ("valid", "primary", checked[0]["as_of"]),
        ("cancelled", "replica", "2026-11-01T00:00:00Z")]
    assert checked[1]["related"][0]["notice_id"] == "04SS-2022-0009"
