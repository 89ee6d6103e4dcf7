"""Watch fan-out (docs/watches.md): one package cancelling a set of invoices, committed through
the real intake (SQLite primary, in-memory replica, the watches' SQLite file) with 100,000
watches in force, against the same package in the same run with none.

Scenarios, each in a data directory of its own, in turn, every round:

- `none`: no watches (the baseline: the commit and the replica's write-through alone);
- `unrelated`: 100,000 watches, none of them of the changed invoices (what matching costs);
- `spread`: 100,000 watches over the changed invoices (100,000 / `--changed` API keys each
  watching every one of them): 100,000 events recorded.

For each: the commit of the cancelling package (`Intake.ingest`, after-commit hook included)
with the service's background fan-out running (`WatchHook.fan_out`: the hook only queues the
changes), the time until its last event is recorded (from the commit's start until the
fan-out drained), and the fan-out's own time (matching and recording the events:
`SqliteWatchStore.record` / `EsWatchStore.record`). The callbacks are not sent here.

    .venv/bin/python -m bench.watches --rounds 3
    .venv/bin/python -m bench.watches --rounds 3 --es   # the distributed deployment's store

`--es`: the primary, the watches and their events on Elasticsearch (an osmem-server on
loopback, or the cluster INVOICE_ES_URL names), as with `INVOICE_ES_URL` set
(`verify.watches.es_store`: the fan-out is a search of the watches and a bulk of creates).

Nothing asserts on the figures; the events recorded are counted and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass

import orjson
from osmem_server import OsmemServer  # type: ignore[import-untyped]

from indexer.store.elasticsearch import default_client
from indexer.submission import BodyFormat, read_submission
from tests.factories import cancel, package, vn_invoice
from tests.indexer.store.plain_json import plain_json_client
from verify.services import Services, open_services
from verify.settings import Settings
from verify.watches.model import Change

WATCHES = 100_000


@dataclass
class Timing:
    commit: float = 0.0
    #: From the commit's start until the background fan-out recorded its last event.
    recorded: float = 0.0
    fan_out: float = 0.0
    events: int = 0


async def _ingest(services: Services, body: dict[str, object]) -> None:
    submission = read_submission(orjson.dumps(body), BodyFormat.JSON, max_items=100_000)
    await services.intake.ingest(submission.package)


async def _watch(services: Services, shape: str, changed: int, keys: int) -> None:
    assert services.watches is not None
    store, now = services.watches.store, time.time()
    ids = [f"vn:0100109106:1:C22TAA:{n}" for n in range(1, changed + 1)]
    if shape == "unrelated":
        ids = [f"vn:0100109106:1:C22TAA:{n}" for n in range(changed + 1, 2 * changed + 1)]
    if shape in ("spread", "unrelated"):
        for k in range(keys):
            await store.create(f"key{k:05d}", ids, now=now, expires_at=now + 86_400,
                               callback_url=None, limit=len(ids))


async def scenario(shape: str, changed: int, keys: int, es_url: str | None = None) -> Timing:
    timing = Timing()
    with tempfile.TemporaryDirectory(prefix="bench-watches-") as tmp:
        env = {"INVOICE_DATA_DIR": tmp}
        if es_url is not None:  # a prefix of its own: each scenario starts empty
            env |= {"INVOICE_ES_URL": es_url, "INVOICE_INSECURE_LOCAL": "1",
                    "INVOICE_ES_INDEX_PREFIX": f"benchw{uuid.uuid4().hex[:10]}"}
        factory = (None if es_url is None else
                   default_client if "INVOICE_ES_URL" in os.environ else plain_json_client)
        settings = Settings.from_env(env)
        async with open_services(settings, es_client_factory=factory) as services:
            hook = services.watches
            assert hook is not None
            n = 2 * changed  # the changed set and as many others (the unrelated watches')
            await _ingest(services, package([vn_invoice(i) for i in range(1, n + 1)]))
            await _watch(services, shape, changed, keys)
            record = hook.store.record

            async def timed(changes: Collection[Change], *, now: float) -> int:
                started = time.perf_counter()
                new = await record(changes, now=now)
                timing.fan_out += time.perf_counter() - started
                timing.events += new
                return new

            hook.store.record = timed  # type: ignore[method-assign]
            notices = [cancel(i, notice_id=f"CANCEL-{i}") for i in range(1, changed + 1)]
            async with hook.fan_out():  # as the service runs it (verify.watches.setup)
                started = time.perf_counter()
                await _ingest(services, package([], notices))
                timing.commit = time.perf_counter() - started
                await hook.drained()
                timing.recorded = time.perf_counter() - started
    return timing


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:9.1f}"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changed", type=int, default=1000,
                        help="invoices the package cancels (default 1000)")
    parser.add_argument("--es", action="store_true",
                        help="on Elasticsearch (osmem-server, or INVOICE_ES_URL)")
    parser.add_argument("--watches", type=int, default=WATCHES,
                        help=f"watches in force (default {WATCHES:,})")
    args = parser.parse_args(argv)
    args.argv = argv
    keys = args.watches // args.changed
    osmem = None
    es_url: str | None = None
    if args.es:
        es_url = os.environ.get("INVOICE_ES_URL")
        if es_url is None:
            osmem = OsmemServer.start(japanese=False)
            es_url = osmem.url
    try:
        return await _run(args, keys, es_url)
    finally:
        if osmem is not None:
            osmem.close()


async def _run(args: argparse.Namespace, keys: int, es_url: str | None) -> int:
    shapes = ("none", "unrelated", "spread")
    got: dict[str, list[Timing]] = {s: [] for s in shapes}
    for _ in range(args.rounds):
        for shape in shapes:  # interleaved: the machine's other load falls on each alike
            got[shape].append(await scenario(shape, args.changed, keys, es_url))
    base = statistics.median(t.commit for t in got["none"])
    where = "Elasticsearch" if es_url else "SQLite"
    print(f"one package cancelling {args.changed} invoices, {args.watches:,} watches ({where}), "
          f"{args.rounds} rounds, medians (ms)")
    print(f"{'watches':<10} {'commit':>9} {'recorded':>9} {'fan-out':>9} {'events':>8} "
          f"{'commit/none':>12}")
    for shape in shapes:
        runs = got[shape]
        commit = [t.commit for t in runs]
        print(f"{shape:<10} {_ms(commit)} {_ms([t.recorded for t in runs])} "
              f"{_ms([t.fan_out for t in runs])} {runs[0].events:>8} "
              f"{statistics.median(commit) / base:>12.2f}")
    for shape in shapes:
        print(f"{shape:<10} rounds (commit ms / last event recorded ms): "
              + " ".join(f"{t.commit * 1000:.1f}/{t.recorded * 1000:.1f}" for t in got[shape]))
    spread = got["spread"]
    per = statistics.median(t.fan_out for t in spread) / max(1, spread[0].events) * 1e6
    print(f"fan-out per event (spread): {per:.2f} us")
    print("reproduce: .venv/bin/python -m bench.watches " + shlex.join(
        sys.argv[1:] if args.argv is None else args.argv))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
