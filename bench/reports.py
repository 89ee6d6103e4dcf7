"""Auditors' reports on the embedded default (SQLite): the numbering-gap report over
1,000,000 invoices, a ledger reconciliation of 10,000 lines and a batch of 100,000 lookups
(`bench.ledger_batch`), each against baselines measured in the same run.

    .venv/bin/python -m bench.reports                 # a few minutes, much of it generating
    .venv/bin/python -m bench.reports --only gaps --invoices 200000 --rounds 5 --keep /tmp/r.sqlite3
    .venv/bin/python -m bench.reports --only ledger --ledger-lines 10000 --batch-rows 100000

Rows are generated straight into a fresh store file with executemany (not through intake):
the reported seller's invoices in several series under two templates, ~0.5% of numbers
missing and ~0.2% cancelled, plus other sellers' invoices (a fifth as many) the report must
skip. Then, per round and in the same process, against the same rows:

- baseline `count`: `SELECT count(*)` of the seller's Vietnamese invoices (index only);
- baseline `scan`: one pass reading number, lifecycle and issue date of each of them, the
  least any report filtering on issue date has to read;
- `report`: the whole gap report (`indexer.reports.numbering_gaps`) for the seller.

It prints the medians and the report's ratio to each baseline: compare ratios across
machines, not seconds. Nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import ledger_batch
from indexer.codec import DOC_FIELDS
from indexer.reports import numbering_gaps
from indexer.store.numbering_reports import NumberingScope
from indexer.store.sqlite import open_sqlite_store

SELLER = "0100109106"
OTHERS = ("0102671977", "0312345673", "0101300842")
SERIES = ("C24TAA", "C24TAB", "C24TBA", "C24TBB", "C24TCA", "K24TXY", "K24TXZ", "C24MAA")
_INSERT = (f"INSERT INTO invoices ({', '.join(DOC_FIELDS)})"
           f" VALUES ({', '.join('?' * len(DOC_FIELDS))})")


def _rows(seller: str, count: int, rng: random.Random, hole: float,
          cancel: float) -> Iterator[tuple[Any, ...]]:
    sequences = [(t, s) for t in ("1", "2") for s in SERIES]
    per = count // len(sequences)
    start = date(2024, 1, 1)
    for template, series in sequences:
        number = 0
        for i in range(per):
            number += 1
            while rng.random() < hole:  # a hole of one or more numbers
                number += 1
            day = start + timedelta(days=i * 365 // per)
            doc = {
                "doc_id": f"vn:{seller}:{template}:{series}:{number}", "scheme": "vn",
                "seller_tax_id": seller, "template": template, "series": series,
                "number": number, "invoice_code": None, "invoice_number": None,
                "authority_code": None, "issued_at": f"{day.isoformat()}T09:00:00+07:00",
                "issued_ts": 0, "issued_on": day.isoformat(), "currency": "VND",
                "amount_before_tax": 10_000_000_000, "tax_amount": 1_000_000_000,
                "total_amount": 11_000_000_000, "seller_name": "Công ty Thử nghiệm",
                "buyer_tax_id": "0314409058", "buyer_name": "Người mua",
                "type_code": None, "check_code": None, "kind": "original",
                "original_id": None,
                "lifecycle": "cancelled" if rng.random() < cancel else "issued",
                "relations": "[]", "package_id": "PKG-BENCH"}
            yield tuple(doc[name] for name in DOC_FIELDS)


async def _create(path: Path) -> None:
    async with open_sqlite_store(path):
        pass


def generate(path: Path, invoices: int, seed: int) -> None:
    asyncio.run(_create(path))
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(_INSERT, _rows(SELLER, invoices, rng, 0.005, 0.002))
    for other in OTHERS:
        conn.executemany(_INSERT, _rows(other, invoices // 5 // len(OTHERS), rng, 0.005, 0.002))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def _timed(fn: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def baseline_count(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM invoices WHERE scheme = 'vn'"
                                " AND seller_tax_id = ?", (SELLER,)).fetchone()[0])


def baseline_scan(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        seen = 0
        for _number, _lifecycle, _issued_on in conn.execute(
                "SELECT number, lifecycle, issued_on FROM invoices WHERE scheme = 'vn'"
                " AND seller_tax_id = ? ORDER BY template, series, number", (SELLER,)):
            seen += 1
        return seen


async def _report(path: Path) -> tuple[int, int, int, int]:
    sequences = issued = missing = cancelled = 0
    async with open_sqlite_store(path) as store:
        async for gaps in numbering_gaps(store, NumberingScope(SELLER)):
            sequences += 1
            issued += gaps.issued
            missing += gaps.missing_count
            cancelled += gaps.cancelled_count
    return sequences, issued, missing, cancelled


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {model}, {os.cpu_count()} cpus, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=1_000_000,
                        help="invoices of the reported seller (others get a fifth as many)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="store file to keep (reused if present)")
    parser.add_argument("--only", choices=("all", "gaps", "ledger"), default="all",
                        help="gaps: the numbering-gap report; ledger: ledger and batch")
    parser.add_argument("--ledger-lines", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    args = parser.parse_args()
    print("command:", shlex.join([Path(sys.executable).name, "-m", "bench.reports",
                                  *sys.argv[1:]]))
    print("machine:", machine())
    if args.only in ("all", "gaps"):
        gap_report(args)
    if args.only in ("all", "ledger"):
        with tempfile.TemporaryDirectory() as tmp:
            ledger_batch.run(Path(tmp) / "data", args.ledger_lines, args.batch_rows,
                             args.rounds)


def gap_report(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "invoices.sqlite3"
        if not path.exists():
            took, _ = _timed(lambda: generate(path, args.invoices, args.seed))
            print(f"generated in {took:.1f} s: {path.stat().st_size / 1e6:.0f} MB")
        times: dict[str, list[float]] = {"count": [], "scan": [], "report": []}
        summary: tuple[int, int, int, int] = (0, 0, 0, 0)
        for _ in range(args.rounds):
            took, rows = _timed(lambda: baseline_count(path))
            times["count"].append(took)
            took, _ = _timed(lambda: baseline_scan(path))
            times["scan"].append(took)
            took, summary = _timed(lambda: asyncio.run(_report(path)))
            times["report"].append(took)
        sequences, issued, missing, cancelled = summary
        print(f"scope: seller {SELLER}, {rows} invoices in {sequences} series; report: "
              f"{issued} issued, {missing} missing, {cancelled} cancelled")
        med = {name: statistics.median(values) for name, values in times.items()}
        for name, value in med.items():
            runs = ", ".join(f"{v:.3f}" for v in times[name])
            print(f"{name:>7}: median {value:.3f} s  (rounds: {runs})")
        print(f"report / count: {med['report'] / med['count']:.1f}x   "
              f"report / scan: {med['report'] / med['scan']:.2f}x")


if __name__ == "__main__":
    main()
