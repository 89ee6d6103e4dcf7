"""Where the reconciler's time goes: a wall-clock breakdown of one run over a saved backlog.

    .venv/bin/python -m bench.outage --rounds 1 --phases reconcile --save-backlog /tmp/backlog
    .venv/bin/python -m bench.outage_profile /tmp/backlog

Copies the saved data directory (the original stays as it is, so the same backlog can be
drained again after a change), wraps the functions a run goes through with wall-clock timers
(in this process only; the product is not touched), counts aiosqlite round trips (each a
hand-off to the connection's thread and back) by the function that asked, runs the
reconciler once and prints a table per phase. A run is one coroutine doing one thing at a
time, so the wall time of an awaited call is what it costs the run; nested rows overlap
(e.g. `Intake._check` contains `_registry_checks`). For fsyncs, run it under
`strace -f -c -e trace=fsync,fdatasync`; for CPU inside a row, `py-spy record --idle`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import aiosqlite.core

from bench.outage_backlog import drain
from fallback.reconciler import ReconcileProgress

#: (module, class or "" for a module-level function, attribute, label). Missing ones are
#: reported and skipped, so the table survives refactors of the product.
TIMED: tuple[tuple[str, str, str, str], ...] = (
    ("fallback.journaled_intake", "JournaledIntake", "apply_entries", "apply_entries (a batch)"),
    ("fallback.journaled_intake", "", "read_submission", "read_submission (parse the body)"),
    ("indexer.intake", "Intake", "ingest_many", "Intake.ingest_many"),
    ("indexer.intake", "Intake", "_check", "Intake._check (step-1 rules + registry)"),
    ("indexer.intake", "", "validate_invoice", "validate_invoice"),
    ("indexer.intake", "", "_registry_checks", "_registry_checks"),
    ("indexer.intake", "Intake", "_apply_checked", "Intake._apply_checked (chain + commit)"),
    ("indexer.store.sqlite", "SqliteStore", "commit_packages", "store.commit_packages"),
    ("indexer.store.sqlite", "SqliteStore", "get_invoices", "store.get_invoices"),
    ("indexer.store.sqlite", "SqliteStore", "find_by_authority_code",
     "store.find_by_authority_code"),
    ("indexer.journal", "IntakeJournal", "pending", "journal.pending (read a batch)"),
    ("indexer.journal", "IntakeJournal", "mark_applied_many", "journal.mark_applied_many"),
    ("fallback.journaled_intake", "JournaledIntake", "_settle_replica", "_settle_replica"),
    ("fallback.gaps", "SqliteGapLedger", "list", "gaps.list (a page)"),
    ("fallback.gaps", "SqliteGapLedger", "resolve_many", "gaps.resolve_many (a page)"),
    ("fallback.lookup.gap_answers", "", "build_answer", "build_answer (per gap)"),
    ("fallback.reconciler", "Reconciler", "_warm", "replica warm (found gaps)"),
)

current = {"phase": "open"}  # what the run reports it is doing
wall: defaultdict[tuple[str, str], float] = defaultdict(float)
calls: Counter[tuple[str, str]] = Counter()
hops: Counter[tuple[str, str]] = Counter()
hop_wall: defaultdict[tuple[str, str], float] = defaultdict(float)


def _wrap(func: Callable[..., Any], label: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                wall[current["phase"], label] += time.perf_counter() - started
                calls[current["phase"], label] += 1
        return timed_async

    @functools.wraps(func)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            wall[current["phase"], label] += time.perf_counter() - started
            calls[current["phase"], label] += 1
    return timed


def instrument() -> list[str]:
    missing = []
    for module_name, owner_name, attr, label in TIMED:
        module = importlib.import_module(module_name)
        owner: Any = getattr(module, owner_name) if owner_name else module
        func = getattr(owner, attr, None)
        if func is None:
            missing.append(f"{module_name}.{owner_name + '.' if owner_name else ''}{attr}")
            continue
        setattr(owner, attr, _wrap(func, label))
    execute = aiosqlite.core.Connection._execute

    async def counted(self: aiosqlite.core.Connection, fn: Any, *args: Any,
                      **kwargs: Any) -> Any:
        where = _asker(sys._getframe(1))
        started = time.perf_counter()
        try:
            return await execute(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            hops[current["phase"], where] += 1
            hop_wall[current["phase"], where] += time.perf_counter() - started

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]
    return missing


def _asker(frame: FrameType | None) -> str:
    """The innermost function of this repository (outside aiosqlite) behind a call."""
    repo = str(Path(__file__).resolve().parents[1])
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(repo) and "/bench/" not in name and "/.venv/" not in name:
            path = Path(name)
            return f"{path.parent.name}/{path.stem}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


def _watch(p: ReconcileProgress) -> None:
    current["phase"] = p.phase or "end"


def report(done: Any, missing: Sequence[str]) -> None:
    progress = done.progress
    sizes = {"journal": (int(progress["journal_applied"]), done.journal_seconds, "entry"),
             "gaps": (int(progress["gaps_checked"]), done.gaps_seconds, "gap")}
    for name, (count, seconds, unit) in sizes.items():
        if not count:
            continue
        print(f"\nphase {name}: {count} in {seconds:.2f} s = {count / seconds:,.0f}/s "
              f"({seconds / count * 1e6:,.0f} us per {unit})")
        rows = sorted(((k[1], v) for k, v in wall.items() if k[0] == name),
                      key=lambda kv: -kv[1])
        for label, spent in rows:
            print(f"  {spent:7.3f} s {spent / seconds:6.1%} {spent / count * 1e6:7.0f} us/{unit}"
                  f"  calls {calls[name, label]:6d}  {label}")
        print("  aiosqlite round trips (thread hand-offs), by the function that asked:")
        trips = sorted(((k[1], n) for k, n in hops.items() if k[0] == name),
                       key=lambda kv: -kv[1])
        for where, n in trips[:12]:
            spent = hop_wall[name, where]
            print(f"  {n:7d} ({n / count:5.2f}/{unit}) {spent:7.3f} s {spent / seconds:6.1%}"
                  f" {spent / n * 1e6:6.0f} us each  {where}")
    if missing:
        print(f"\nnot found (renamed?), not timed: {', '.join(missing)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage_profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("backlog", type=Path,
                        help="a data directory saved by bench.outage --save-backlog")
    args = parser.parse_args(argv)
    if not (args.backlog / "journal.sqlite3").exists():
        parser.error(f"{args.backlog} holds no journal.sqlite3")
    missing = instrument()
    workdir = Path(tempfile.mkdtemp(prefix="bench-outage-profile-"))
    try:
        data = workdir / "data"
        shutil.copytree(args.backlog, data)
        done = asyncio.run(drain(data, _watch))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(done, missing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
