"""Ledger reconciliation and batch verification figures, for `bench.reports`.

A fresh data directory gets, straight into its SQLite store (executemany of the codec's
documents, not through intake): a buyer's invoices of May 2024 with cancellations,
replacements and adjustments, and a second seller's invoices for the batch. Then, per round:

- ledger (default 10,000 lines: mostly valid, some mismatching, cancelled, replaced,
  adjusted, not found, unconfirmed inside an upstream window, and bad lines):
  baseline `get_invoices`, the same keys read in the report's chunks and nothing else;
  baseline `scan`, the buyer's period through `scan_buyer_invoices`;
  `parse` (CSV read, lines made lookups), `parse xlsx` (the same ledger as a workbook);
  `report` (parse, check every line, list what the ledger lacks, render JSON: the path of
  `invoice-verify report ledger`), and `endpoint` (`POST /api/v1/reports/ledger`, the
  app in this process, client included);
- batch (default 100,000 rows, 95% found): baseline `lookups`, one `get_invoice` per row;
  `core` (`verify.lookup.batch.answer_rows` over the local store: the CLI's `verify --batch`);
  `endpoint` (`POST /api/v1/verify/batch`: keys off (insecure local), but the limiter,
  lookup core, audit trail and NDJSON streaming as served).
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from fallback.outages import System
from indexer.codec import DOC_FIELDS, invoice_to_doc
from indexer.keys import VnKey
from indexer.model import Amounts, Invoice, Kind, Lifecycle, Relation, RelationKind
from indexer.store.protocol import IssuedPosition
from indexer.store.sqlite import open_sqlite_store
from tests.ledgers import csv_bytes, xlsx_bytes
from verify.app import create_app
from verify.lookup.batch import answer_rows, parse_rows, store_verifier
from verify.reports.ledger import ledger_request, read_lines, render
from verify.reports.ledger_check import LedgerTotals, LineChecker
from verify.reports.ledger_lines import LedgerLine
from verify.reports.query import Period
from verify.services import open_services
from verify.settings import Settings

BUYER = "0314409058"
SELLER = "0100109106"
BATCH_SELLER = "0102671977"
VN_TZ = timezone(timedelta(hours=7))
MAY = (date(2024, 5, 1), date(2024, 6, 1))
AMOUNTS = Amounts(Decimal(1_000_000), Decimal(100_000), Decimal(1_100_000))
LEDGER_HEADER = ("seller_tax_id", "template", "series", "number", "issued_on", "amount",
                 "tax_amount", "total_amount")
BATCH_HEADER = ("seller_tax_id", "template", "series", "number", "total_amount")
CHUNK = 500
_INSERT = (f"INSERT INTO invoices ({', '.join(DOC_FIELDS)})"
           f" VALUES ({', '.join('?' * len(DOC_FIELDS))})")

Timings = dict[str, list[float]]


def _invoice(seller: str, series: str, number: int, day: date, *, buyer: str,
             kind: Kind = Kind.ORIGINAL, original: VnKey | None = None,
             lifecycle: Lifecycle = Lifecycle.ISSUED,
             relations: tuple[Relation, ...] = ()) -> Invoice:
    return Invoice(key=VnKey(seller, "1", series, number),
                   issued_at=datetime.combine(day, datetime.min.time(), VN_TZ)
                   + timedelta(hours=9), currency="VND", amounts=AMOUNTS,
                   package_id="PKG-BENCH", kind=kind, original=original, seller_tax_id=seller,
                   buyer_tax_id=buyer, lifecycle=lifecycle, relations=relations)


def _may_day(n: int) -> date:
    return MAY[0] + timedelta(days=n % 31)


def ledger_invoices(lines: int) -> Iterator[Invoice]:
    """The buyer's May: `lines` + 7% originals (every 40th cancelled, replaced, adjusted),
    and the replacements and adjustments, which the ledger will not list."""
    for n in range(1, lines * 107 // 100 + 1):
        day = _may_day(n)
        key = VnKey(SELLER, "1", "C24TAA", n)
        if n % 40 == 1:
            yield _invoice(SELLER, "C24TAA", n, day, buyer=BUYER,
                           lifecycle=Lifecycle.CANCELLED, relations=(Relation(
                               RelationKind.CANCELLED_BY, notice_id=f"04SS-{n}",
                               reason="wrong buyer"),))
        elif n % 40 in (2, 3):
            replaced = n % 40 == 2
            series = "C24TAB" if replaced else "C24TAC"
            other = VnKey(SELLER, "1", series, n)
            yield _invoice(SELLER, "C24TAA", n, day, buyer=BUYER,
                           lifecycle=Lifecycle.REPLACED if replaced else Lifecycle.ADJUSTED,
                           relations=(Relation(RelationKind.REPLACED_BY if replaced
                                               else RelationKind.ADJUSTED_BY, key=other),))
            yield _invoice(SELLER, series, n, day, buyer=BUYER,
                           kind=Kind.REPLACEMENT if replaced else Kind.ADJUSTMENT,
                           original=key, relations=(Relation(
                               RelationKind.REPLACES if replaced else RelationKind.ADJUSTS,
                               key=key),))
        else:
            yield _invoice(SELLER, "C24TAA", n, day, buyer=BUYER)


def batch_invoices(rows: int) -> Iterator[Invoice]:
    for n in range(1, rows + 1):
        yield _invoice(BATCH_SELLER, "C24TBA", n, _may_day(n), buyer="0312345673")


def generate(data_dir: Path, invoices: Iterator[Invoice]) -> None:
    """A data directory of its own per part: the ledger's upstream window and the gaps its
    unconfirmed lines record must not change what the batch's misses mean."""
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(data_dir)})

    async def create() -> None:
        async with open_sqlite_store(settings.sqlite_path):
            pass

    asyncio.run(create())
    conn = sqlite3.connect(settings.sqlite_path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(_INSERT, (tuple(invoice_to_doc(inv)[f] for f in DOC_FIELDS)
                               for inv in invoices))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def ledger_rows(lines: int) -> list[list[object]]:
    """96% lines naming the buyer's originals (every 20th valid one with a wrong total),
    2% not found, 1% issued today (inside the upstream window: unconfirmed), 1% bad."""
    ok = [str(a) for a in (AMOUNTS.before_tax, AMOUNTS.tax, AMOUNTS.total)]
    today = datetime.now(VN_TZ).date()
    named = lines * 96 // 100
    rows: list[list[object]] = []
    for n in range(1, named + 1):
        total = "1200000" if n % 20 == 0 else ok[2]
        rows.append([SELLER, "1", "C24TAA", n, _may_day(n).isoformat(), ok[0], ok[1], total])
    for i in range(lines * 2 // 100):
        rows.append([SELLER, "1", "C24TAA", 900_000 + i, "2024-05-20", *ok])
    for i in range(lines // 100):
        rows.append([SELLER, "1", f"C{today.year % 100:02d}TAA", i + 1, today.isoformat(),
                     *ok])
    while len(rows) < lines:
        rows.append([SELLER, "1", "C24TAA", f"x{len(rows)}", "2024-05-20", *ok])
    return rows


def batch_body(rows: int) -> bytes:
    """95% found (every 25th with a wrong total), 5% numbers never issued."""
    body = []
    for n in range(1, rows + 1):
        number = n if n % 20 else rows + n
        body.append([BATCH_SELLER, "1", "C24TBA", number, "1" if n % 25 == 0 else "1100000"])
    return csv_bytes(BATCH_HEADER, body)


async def _timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await fn()
    return time.perf_counter() - began, result


def _settings(data_dir: Path) -> Settings:
    # Keys off (loopback): the limiter still runs, with budgets out of a bench's reach.
    return Settings.from_env({"INVOICE_DATA_DIR": str(data_dir), "INVOICE_INSECURE_LOCAL": "1",
                              "INVOICE_RATE_INVOICE_PER_DAY": "1000000000",
                              "INVOICE_RATE_MISSES_PER_HOUR": "1000000000"})


async def bench_ledger(data_dir: Path, lines: int, rounds: int) -> tuple[Timings, LedgerTotals]:
    settings = _settings(data_dir)
    rows = ledger_rows(lines)
    body, workbook = csv_bytes(LEDGER_HEADER, rows), xlsx_bytes(LEDGER_HEADER, rows)
    request = ledger_request(BUYER, period=Period(start=date(2024, 5, 1),
                                                  end=date(2024, 5, 31)))
    times: Timings = {name: [] for name in ("get_invoices", "scan", "parse", "parse xlsx",
                                             "report", "endpoint")}
    totals = LedgerTotals()
    async with open_services(settings) as services:
        store, resilience = services.store, services.resilience
        now = datetime.now(UTC)
        await resilience.outages.declare(System.UPSTREAM, now - timedelta(hours=1),
                                         now + timedelta(hours=1), "bench", "bench")
        _, parsed = read_lines(body, BUYER, settings.rules)
        ids = sorted({ln.doc_id for ln in parsed if isinstance(ln, LedgerLine)})

        async def baseline_reads() -> None:
            for start in range(0, len(ids), CHUNK):
                await store.get_invoices(ids[start:start + CHUNK])

        async def baseline_scan() -> int:
            seen, after = 0, None
            while page := await store.scan_buyer_invoices(BUYER, *MAY, after=after):
                seen += len(page)
                after = IssuedPosition.of(page[-1])
            return seen

        async def parse(data: bytes) -> None:
            read_lines(data, BUYER, settings.rules)

        async def report() -> LedgerTotals:
            table, checked = read_lines(body, BUYER, settings.rules)
            result = LedgerTotals()
            sink = io.BytesIO()
            async for chunk in render(request, table, checked,
                                      LineChecker(resilience, "bench"), result):
                sink.write(chunk)
            return result

        for _ in range(rounds):
            times["get_invoices"].append((await _timed(baseline_reads))[0])
            times["scan"].append((await _timed(baseline_scan))[0])
            times["parse"].append((await _timed(lambda: parse(body)))[0])
            times["parse xlsx"].append((await _timed(lambda: parse(workbook)))[0])
            took, totals = await _timed(report)
            times["report"].append(took)
    times["endpoint"] = await _endpoint_rounds(
        settings, "/api/v1/reports/ledger?buyer_tax_id=0314409058&from=2024-05-01"
        "&to=2024-05-31", body, rounds)
    return times, totals


async def _endpoint_rounds(settings: Settings, path: str, body: bytes,
                           rounds: int) -> list[float]:
    """POST `body` as CSV and read the whole streamed answer, `rounds` times."""
    took: list[float] = []
    async with TestServer(create_app(settings)) as server, aiohttp.ClientSession() as http:
        for _ in range(rounds):
            began = time.perf_counter()
            async with http.post(server.make_url(path), data=body,
                                 headers={"Content-Type": "text/csv"}) as resp:
                assert resp.status == 200, await resp.text()
                async for _chunk in resp.content.iter_chunked(1 << 16):
                    pass
            took.append(time.perf_counter() - began)
    return took


async def bench_batch(data_dir: Path, rows: int, rounds: int) -> Timings:
    settings = _settings(data_dir)
    body = batch_body(rows)
    parsed = parse_rows(body, "text/csv")
    ids = [VnKey(r["seller_tax_id"], r["template"], r["series"], int(r["number"])).doc_id
           for r in parsed]
    times: Timings = {"lookups": [], "core": []}
    async with open_sqlite_store(settings.sqlite_path) as store:
        async def lookups() -> None:
            for doc_id in ids:
                await store.get_invoice(doc_id)

        async def core() -> None:
            async for _ in answer_rows(parse_rows(body, "text/csv"), settings.rules,
                                       store_verifier(store)):
                pass

        for _ in range(rounds):
            times["lookups"].append((await _timed(lookups))[0])
            times["core"].append((await _timed(core))[0])
    times["endpoint"] = await _endpoint_rounds(settings, "/api/v1/verify/batch", body, rounds)
    return times


def report_lines(times: Timings, count: int, unit: str) -> list[str]:
    out = []
    for name, values in times.items():
        med = statistics.median(values)
        runs = ", ".join(f"{v:.3f}" for v in values)
        out.append(f"{name:>12}: median {med:.3f} s, {count / med:,.0f} {unit}/s  "
                   f"(rounds: {runs})")
    return out


def run(data_dir: Path, ledger_lines: int, batch_rows: int, rounds: int) -> None:
    began = time.perf_counter()
    generate(data_dir / "ledger", ledger_invoices(ledger_lines))
    generate(data_dir / "batch", batch_invoices(batch_rows))
    print(f"generated {ledger_lines:,}-line ledger data and {batch_rows:,} batch invoices "
          f"in {time.perf_counter() - began:.1f} s")
    ledger, totals = asyncio.run(bench_ledger(data_dir / "ledger", ledger_lines, rounds))
    print(f"ledger of {ledger_lines:,} lines: {totals.summary()}")
    for line in report_lines(ledger, ledger_lines, "lines"):
        print(line)
    med = {k: statistics.median(v) for k, v in ledger.items()}
    reads = med["get_invoices"] + med["scan"]
    print(f"report / (get_invoices + scan): {med['report'] / reads:.1f}x   "
          f"report - parse: {med['report'] - med['parse']:.3f} s")
    batch = asyncio.run(bench_batch(data_dir / "batch", batch_rows, rounds))
    print(f"batch of {batch_rows:,} lookups (95% found):")
    for line in report_lines(batch, batch_rows, "rows"):
        print(line)
    med = {k: statistics.median(v) for k, v in batch.items()}
    print(f"core / lookups: {med['core'] / med['lookups']:.1f}x   "
          f"endpoint / lookups: {med['endpoint'] / med['lookups']:.1f}x")
