"""Reconcile throughput for bench/outage.py: a backlog built through the real service during
a declared maintenance window, drained by the reconciler in this process, against baselines
measured on copies of the same data directory in the same round.

The backlog: `packages` journal entries (each `package_size` new invoices, posted to
`POST /api/v1/packages` while the primary is in maintenance: every one answered 202) and
`gaps` open gaps (lookups of distinct keys during the window, half of invoices the primary
holds but the freshly started service's in-memory replica does not, half of keys nobody
holds: every one answered `unconfirmed` with a gap id). The window is kept in force by
declaring short overlapping windows (`POST /api/v1/outages`) while the backlog is built, so
it ends within seconds once building stops; the service is stopped and the reconciler runs
only after the last window has ended.

Timed: `Reconciler.run()` as `invoice-verify reconcile` builds it (`open_reconciler`), with
each phase timed from the run's own progress reports. Baselines, on copies taken before the
drain: the same package bodies parsed and ingested one by one with `Intake.ingest` (what a
200 intake costs the store), the same in batches with `Intake.ingest_many` (the drain
without the journal), and the store reads a gap re-check needs (`get_invoices` per page of
500 keys, `find_by_authority_code` per code) without answers, ledger or replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bench.lookup import LOOKUP, SetupError
from fallback.gaps import Gap, GapStatus, open_gap_ledger
from fallback.lookup.gap_answers import gap_query
from fallback.reconciler import ReconcileProgress
from indexer.intake import BatchItem
from indexer.package import PackageError
from indexer.store.sqlite import open_sqlite_store
from indexer.submission import BodyFormat, read_submission
from tests.factories import package, vn_invoice
from verify.cli.heap import freeze_startup_heap
from verify.cli.reconcile import open_reconciler
from verify.services import open_services
from verify.settings import Settings

OUTAGES = "/api/v1/outages"
PACKAGES = "/api/v1/packages"
#: Each declared window lasts this long; a new one is declared every `_KEEP_EVERY` seconds
#: while the backlog is built, so the maintenance ends at most this long after it.
_WINDOW = timedelta(seconds=6)
_KEEP_EVERY = 2.0
GAP_PAGE = 500


@dataclass(frozen=True, slots=True)
class Backlog:
    bodies: list[bytes]  # the journal entries, in posting order
    invoices: int
    gap_paths: list[str]
    found_share: float


def make_backlog(template_db: Path, packages: int, package_size: int, gaps: int,
                 seed: int) -> Backlog:
    """New invoices of the seller of docs/intake.md#post-a-package (registered by the demo,
    holding none of its invoices) in `packages` packages, and `gaps` distinct lookup paths:
    half of them demo invoices the primary holds, half keys no one holds (VN keys past the
    series' end, CN 20-digit numbers, authority codes)."""
    bodies = []
    for i in range(packages):
        first = i * package_size + 1
        invoices = [vn_invoice(n) for n in range(first, first + package_size)]
        bodies.append(json.dumps(package(invoices, package_id=f"OUTAGE-{i + 1:07d}"),
                                 ensure_ascii=False).encode())
    rng = random.Random(seed)
    conn = sqlite3.connect(f"file:{template_db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT scheme, seller_tax_id, template, series, number, invoice_code,"
            " invoice_number FROM invoices ORDER BY doc_id").fetchall()
        top = {(s, t, se): n for s, t, se, n in conn.execute(
            "SELECT seller_tax_id, template, series, MAX(number) FROM invoices"
            " WHERE scheme = 'vn' GROUP BY 1, 2, 3")}
    finally:
        conn.close()
    found = gaps // 2
    if found > len(rows):
        raise SetupError(f"--gaps {gaps}: the demo data holds only {len(rows)} invoices "
                         f"for the found half (raise --per-series)")
    paths = []
    for scheme, seller, template, series, number, code, cn_number in rng.sample(rows, found):
        if scheme == "vn":
            params = {"seller_tax_id": seller, "template": template, "series": series,
                      "number": str(number)}
        elif code:
            params = {"code": code, "number": cn_number}
        else:
            params = {"number": cn_number}
        paths.append(f"{LOOKUP}?{urlencode(params)}")
    series = sorted(top)
    taken: set[str] = set()
    for i in range(gaps - found):
        kind = i % 4
        if kind < 2:
            seller, template, name = series[i % len(series)]
            params = {"seller_tax_id": seller, "template": template, "series": name,
                      "number": str(top[(seller, template, name)] + 1000 + i)}
        elif kind == 2:
            params = {"number": f"2544{rng.randrange(10**15, 10**16):016d}"}
        else:
            params = {"authority_code": f"00{rng.getrandbits(128):032X}"}
        path = f"{LOOKUP}?{urlencode(params)}"
        if path not in taken:
            taken.add(path)
            paths.append(path)
    return Backlog(bodies, packages * package_size, paths, found / max(1, gaps))


# --------------------------------------------------------------------------- building


@dataclass
class Built:
    intake: Counter[str] = field(default_factory=Counter)  # "<http code> <result>"
    lookups: Counter[str] = field(default_factory=Counter)  # "<http code> <status> <source>"
    intake_seconds: float = 0.0
    lookup_seconds: float = 0.0
    windows: int = 0
    window_end: datetime | None = None


async def _declare(session: aiohttp.ClientSession, base: str, built: Built) -> None:
    now = datetime.now(UTC)
    end = now + _WINDOW
    async with session.post(f"{base}{OUTAGES}", json={
            "system": "primary", "start": (now - timedelta(minutes=1)).isoformat(),
            "end": end.isoformat(), "reason": "bench: reconcile backlog"}) as resp:
        if resp.status != 201:
            raise SetupError(f"declaring maintenance answered {resp.status}: "
                             f"{(await resp.text())[:300]}")
    built.windows += 1
    built.window_end = end


async def _keep_declaring(session: aiohttp.ClientSession, base: str, built: Built) -> None:
    while True:
        await asyncio.sleep(_KEEP_EVERY)
        await _declare(session, base, built)


async def _each(items: Sequence[Any], concurrency: int,
                one: Callable[[Any], Any]) -> None:
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await one(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def build(port: int, token: str, backlog: Backlog, concurrency: int) -> Built:
    """Post every package and look up every gap path while the primary is in maintenance."""
    base = f"http://127.0.0.1:{port}"
    built = Built()
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        await _declare(session, base, built)
        keeper = asyncio.create_task(_keep_declaring(session, base, built))
        try:
            async def post(body: bytes) -> None:
                async with session.post(f"{base}{PACKAGES}", data=body, headers={
                        "Content-Type": "application/json"}) as resp:
                    answer = await resp.json(content_type=None)
                result = answer.get("result", "-") if isinstance(answer, dict) else "-"
                built.intake[f"{resp.status} {result}"] += 1

            async def get(path: str) -> None:
                async with session.get(f"{base}{path}") as resp:
                    answer = await resp.json(content_type=None)
                ok = isinstance(answer, dict)
                built.lookups[f"{resp.status} {answer.get('status', '-') if ok else '-'} "
                              f"{answer.get('source', '-') if ok else '-'}"] += 1

            started = time.perf_counter()
            await _each(backlog.bodies, concurrency, post)
            built.intake_seconds = time.perf_counter() - started
            started = time.perf_counter()
            await _each(backlog.gap_paths, concurrency * 4, get)
            built.lookup_seconds = time.perf_counter() - started
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
    return built


def wait_window_end(built: Built) -> float:
    """Sleep until the last declared window has ended; the seconds slept."""
    assert built.window_end is not None
    left = (built.window_end - datetime.now(UTC)).total_seconds() + 0.2
    if left > 0:
        time.sleep(left)
    return max(0.0, left)


# --------------------------------------------------------------------------- draining


@dataclass
class PhaseClock:
    """Times each phase of a run from the reconciler's progress reports."""

    seen: dict[str, float] = field(default_factory=dict)
    ended: float | None = None

    def __call__(self, p: ReconcileProgress) -> None:
        now = time.perf_counter()
        if p.phase is not None:
            self.seen.setdefault(p.phase, now)
        elif p.state == "idle":
            self.ended = now

    def seconds(self, phase: str) -> float:
        start = self.seen[phase]
        later = [t for t in self.seen.values() if t > start]
        end = min(later) if later else self.ended
        assert end is not None
        return end - start


@dataclass(frozen=True, slots=True)
class Drained:
    progress: dict[str, Any]
    journal_seconds: float
    gaps_seconds: float
    open_seconds: float  # opening the files (the journal's pending documents loaded)
    invoices_after: int
    journal_counts: dict[str, int]


def settings_for(data_dir: Path) -> Settings:
    return Settings.from_env({"INVOICE_DATA_DIR": str(data_dir), "INVOICE_GAP_GRACE_HOURS": "0",
                              "INVOICE_LOG_LEVEL": "WARNING"})


async def drain(data_dir: Path,
                watch: Callable[[ReconcileProgress], None] | None = None) -> Drained:
    """One `Reconciler.run()` on the data directory, built as `invoice-verify reconcile`
    builds it; `watch` also sees every progress report."""
    settings = settings_for(data_dir)
    clock = PhaseClock()
    started = time.perf_counter()
    async with open_reconciler(settings) as (rec, monitor):
        freeze_startup_heap()  # as `invoice-verify reconcile` does (verify/cli/heap.py)
        opened = time.perf_counter() - started
        await monitor.probe_once()

        def report(p: ReconcileProgress) -> None:
            clock(p)
            if watch is not None:
                watch(p)

        rec.on_progress = report
        progress = await rec.run()
        counts = await rec.journal.counts()
        invoices = await rec.intake.intake.store.count_invoices()
    return Drained(progress.as_dict(), clock.seconds("journal"), clock.seconds("gaps"),
                   opened, invoices, counts)


# --------------------------------------------------------------------------- baselines


async def direct_ingest(data_dir: Path, bodies: list[bytes], *, batch: int | None,
                        ) -> tuple[float, int]:
    """The same bodies parsed and applied straight to the store (no journal, no HTTP):
    one by one with `Intake.ingest` (`batch` None), or `batch` at a time with
    `Intake.ingest_many`. (seconds, invoices accepted)."""
    settings = settings_for(data_dir)
    async with open_services(settings) as services:  # as the service builds its intake
        intake = services.intake
        accepted = 0
        started = time.perf_counter()
        if batch is None:
            for body in bodies:
                sub = read_submission(body, BodyFormat.JSON, max_items=settings.max_package_items)
                result = await intake.ingest(sub.package, sub.originals,
                                             received_at=datetime.now(UTC))
                accepted += int(result.notice["accepted"])
        else:
            for start in range(0, len(bodies), batch):
                items = []
                for body in bodies[start:start + batch]:
                    sub = read_submission(body, BodyFormat.JSON,
                                          max_items=settings.max_package_items)
                    items.append(BatchItem(sub.package, datetime.now(UTC), sub.originals))
                for outcome in await intake.ingest_many(items):
                    if not isinstance(outcome, PackageError):
                        accepted += int(outcome.notice["accepted"])
        return time.perf_counter() - started, accepted


async def open_gaps(data_dir: Path) -> list[Gap]:
    async with open_gap_ledger(settings_for(data_dir).gaps_path) as ledger:
        out: list[Gap] = []
        after: str | None = None
        while page := await ledger.list(status=GapStatus.OPEN, after=after, limit=1000):
            out += page
            after = page[-1].id
        return out


async def store_reads(data_dir: Path, gaps: list[Gap]) -> tuple[float, int]:
    """The primary reads a re-check of these gaps needs, nothing else: (seconds, found)."""
    queries = [gap_query(g) for g in gaps]
    async with open_sqlite_store(settings_for(data_dir).sqlite_path) as store:
        found = 0
        started = time.perf_counter()
        for start in range(0, len(queries), GAP_PAGE):
            page = queries[start:start + GAP_PAGE]
            keys = {q.key.doc_id for q in page if q.key is not None}
            found += len(await store.get_invoices(keys))
            for q in page:
                if q.key is None and q.authority_code is not None \
                        and await store.find_by_authority_code(q.authority_code) is not None:
                    found += 1
        return time.perf_counter() - started, found


def copy_dir(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
