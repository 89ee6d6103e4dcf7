"""The audit trail's flush alone: CPU per row of the ways to write a buffer of rows.

    .venv/bin/python -m bench.audit_flush --rounds 5 --batch 2500 --batches 20

Each way writes the same rows (`AuditTrail.record`'s tuples, targets spread over 100,000
invoices, `--targets`) into a fresh `access.sqlite3` made by `open_access_db` (its pragmas), already
holding `--prefill` rows, in batches of `--batch` (a 0.5 s flush at ~5,000 lookups/s),
on a thread of its own as aiosqlite does. Per round and way: the writer thread's CPU per
row (`time.thread_time`), the caller's share (what the event loop pays to hand the batch
over), and with `--busy` the wall time of one batch while the main thread runs Python
meanwhile (GIL hand-offs: a statement step per row waits for the GIL each time).

Ways: `json3` the statement before brief F (json_extract x8, strftime per row, three
indexes); `json1` that with the time index alone (`at_ts`, the one a query uses);
`arrow3` `value ->> n` instead of json_extract; `arrow1` that with the time
index alone; `at1` the text of `at` made in Python (`at_text`) and one index;
`many1` `executemany` of plain tuples in one transaction, one index.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from verify.access.db import open_access_db

Row = tuple[Any, ...]
_COLS = "INSERT INTO audit (at, at_ts, key_id, role, action, target, outcome, client)"
_JSON = (_COLS + " SELECT strftime('%Y-%m-%dT%H:%M:%f+00:00', json_extract(value, '$[0]'),"
         " 'unixepoch'), json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
         " json_extract(value, '$[2]'), json_extract(value, '$[3]'),"
         " json_extract(value, '$[4]'), json_extract(value, '$[5]'),"
         " json_extract(value, '$[6]') FROM json_each(?)")
_ARROW = (_COLS + " SELECT strftime('%Y-%m-%dT%H:%M:%f+00:00', value ->> 0, 'unixepoch'),"
          " value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,"
          " value ->> 6 FROM json_each(?)")
_AT = (_COLS + " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,"
       " value ->> 5, value ->> 6, value ->> 7 FROM json_each(?)")
_ONE = _COLS + " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
#: The two indexes beside `audit_at` (reads by key and by target use them), put back or
#: dropped whatever the file has, to measure what each way of writing costs with and without.
_KEEP = ("CREATE INDEX IF NOT EXISTS audit_key ON audit (key_id, at_ts)",
         "CREATE INDEX IF NOT EXISTS audit_target ON audit (target, at_ts)")
_DROP = ("DROP INDEX IF EXISTS audit_key", "DROP INDEX IF EXISTS audit_target")


#: 1970-01-01 as SQLite's julian day number, in milliseconds.
_JULIAN_MS = 210866760000000.0


def at_text(ts: float) -> str:
    """`at` as SQLite's strftime('%Y-%m-%dT%H:%M:%f+00:00', ts, 'unixepoch') writes it:
    milliseconds since its julian epoch, rounded half up (checked equal on 500,000 moments)."""
    ms = int(ts * 1000.0 + _JULIAN_MS + 0.5) - int(_JULIAN_MS)
    second, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{milli:03d}+00:00"


def rows(count: int, rng: random.Random, targets: int = 100_000) -> list[Row]:
    now = time.time()
    return [(now + i / 5000, f"k{rng.randrange(50):04d}", "verify", "verify",
             f"vn:0100109106:1:C22TAA:{rng.randrange(targets)}", "valid", "127.0.0.1")
            for i in range(count)]


def _json(sql: str) -> tuple[Callable[[list[Row]], Any], Callable[[Any, Any], None]]:
    def prepare(batch: list[Row]) -> Any:
        return orjson.dumps(batch)

    def write(conn: Any, data: Any) -> None:
        conn.execute(sql, (data,))
    return prepare, write


def _at_json() -> tuple[Callable[[list[Row]], Any], Callable[[Any, Any], None]]:
    def prepare(batch: list[Row]) -> Any:
        return orjson.dumps([(at_text(r[0]), *r) for r in batch])

    def write(conn: Any, data: Any) -> None:
        conn.execute(_AT, (data,))
    return prepare, write


def _many() -> tuple[Callable[[list[Row]], Any], Callable[[Any, Any], None]]:
    def prepare(batch: list[Row]) -> Any:
        return [(at_text(r[0]), *r) for r in batch]

    def write(conn: Any, data: Any) -> None:
        conn.execute("BEGIN")
        conn.executemany(_ONE, data)
        conn.execute("COMMIT")
    return prepare, write


WAYS = {"json3": (True, _json(_JSON)), "json1": (False, _json(_JSON)),
        "arrow3": (True, _json(_ARROW)),
        "arrow1": (False, _json(_ARROW)), "at1": (False, _at_json()),
        "many1": (False, _many())}


async def _make(path: Path, keep_indexes: bool, prefill: Sequence[Row]) -> None:
    async with open_access_db(path) as conn:
        for statement in _KEEP if keep_indexes else _DROP:
            await conn.execute(statement)
        await conn.execute(_JSON, (orjson.dumps(list(prefill)),))


def _busy(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(200))


def one_way(name: str, args: argparse.Namespace, prefill: Sequence[Row]) -> dict[str, float]:
    keep, (prepare, write) = WAYS[name]
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "access.sqlite3"
        asyncio.run(_make(path, keep, prefill))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL",
                       "PRAGMA mmap_size = 268435456", "PRAGMA cache_size = -16384"):
            conn.execute(pragma)
        caller = writer = wall = 0.0
        for _ in range(args.batches):
            batch = rows(args.batch, rng, args.targets)
            start = time.thread_time()
            data = prepare(batch)
            caller += time.thread_time() - start
            spent: list[float] = []

            def run(data: Any = data, spent: list[float] = spent) -> None:
                begin = time.thread_time()
                write(conn, data)
                spent.append(time.thread_time() - begin)
            stop = threading.Event()
            spinner = threading.Thread(target=_busy, args=(stop,))
            if args.busy:
                spinner.start()
            thread = threading.Thread(target=run)
            began = time.perf_counter()
            thread.start()
            thread.join()
            wall += time.perf_counter() - began
            stop.set()
            if args.busy:
                spinner.join()
            writer += spent[0]
        conn.close()
    total = args.batch * args.batches
    return {"writer": writer / total * 1e6, "caller": caller / total * 1e6,
            "wall_ms": wall / args.batches * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2500)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--prefill", type=int, default=200_000)
    parser.add_argument("--targets", type=int, default=100_000, help="invoices looked up")
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--ways", default=",".join(WAYS))
    args = parser.parse_args()
    names = args.ways.split(",")
    prefill = rows(args.prefill, random.Random(1), args.targets)
    seen: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name in names:
            seen[name].append(one_way(name, args, prefill))
    print(f"us per row, {args.batch} rows a batch, {args.prefill} rows before"
          + (", main thread busy" if args.busy else ""))
    for name in names:
        for part in ("writer", "caller", "wall_ms"):
            values = [r[part] for r in seen[name]]
            print(f"{name:7} {part:8} median {statistics.median(values):8.2f}  ("
                  + " ".join(f"{v:.2f}" for v in values) + ")")


if __name__ == "__main__":
    main()
