"""What every lookup pays around its answer, in microseconds of CPU per request, in process.

    .venv/bin/python -m bench.fixed_costs --rounds 7
    .venv/bin/python -m bench.fixed_costs --b-tree /tmp/b     # two builds at the same moment

The parts of a lookup that no answer reuse can skip, alone, around a handler that returns
pre-encoded bytes, on three apps over the same request objects:
- `bare`: the handler on an app with nothing of ours;
- `layer`: our outermost middleware in front of it, with the request metrics
  (`verify.http.middlewares.around`, `fallback.metrics.Metrics.observe_request`);
- `fixed`: that middleware with the access checks run inside it (`around(guard)`: the key's
  authentication and role) and a handler that also spends the lookup's budgets in memory
  (`Access.admit` with the key's budget due: key, misses peek, the invoice's key share and
  day; then `settle`) and appends the audit row.
So `layer - bare` is the middleware layer and metrics, `fixed - layer` the access parts.
Requests are clones of one made by aiohttp's helper (as `bench.lookup_profile
--in-process`), 50 at a time, over 1,000 invoice ids; the main thread's CPU per request,
per round, the three apps taking turns (the audit's SQLite writes run on aiosqlite's thread
and are not counted; encoding its buffer is).

With `--b-tree`, this file is run on this checkout (A) and on another source tree (B: `git
worktree add /tmp/b REV`) at the same moment, both pinned to one core (`taskset -c 1`), and
the per-round figures of both are printed with B/A of `fixed - bare`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from aiohttp import web

from bench.lookup_profile import stand_in_request
from fallback.metrics import Metrics
from verify.access.middleware import PRINCIPAL, guard, key_due
from verify.access.roles import Role
from verify.access.service import Access, open_access
from verify.http.middlewares import around, error_middleware
from verify.keys import ACCESS, SERVICES
from verify.services import Services
from verify.settings import KeyBudget, Limits, Settings

CONCURRENT = 50
BODY = b'{"status":"valid"}'
LOOKUP = "/api/v1/invoices/lookup"
APPS = ("bare", "layer", "fixed")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _limits() -> Limits:
    """Budgets far out of reach: every take is spent, none refused."""
    roomy = KeyBudget(per_minute=10**9, burst=10**9)
    return Limits(key_budgets=tuple((role.value, roomy) for role in Role),
                  invoice_per_day=10**9, invoice_per_key_per_day=10**9,
                  misses_per_hour=10**9)


def _handler(access: Access | None) -> Handler:
    async def bare(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    async def lookup(request: web.Request) -> web.Response:
        assert access is not None
        principal = request[PRINCIPAL]
        doc_id = request.rel_url.query_string
        admission = await access.admit(principal, doc_id, key=key_due(request))
        await access.settle(principal, admission, None)
        access.audit.record(principal, "verify", doc_id, "valid", request.remote)
        return web.Response(body=BODY, content_type="application/json")

    return bare if access is None else lookup


async def _app(kind: str, access: Access) -> web.AppRunner:
    middlewares = {"bare": [], "layer": [error_middleware], "fixed": [around(guard)]}[kind]
    app = web.Application(middlewares=middlewares)
    if kind != "bare":
        app[ACCESS] = access
        # the one part of the services the middleware reads
        app[SERVICES] = cast(Services, SimpleNamespace(metrics=Metrics()))
    handler = _handler(access if kind == "fixed" else None)
    app.router.add_routes([web.get(LOOKUP, handler, name="invoices.lookup")])
    runner = web.AppRunner(app)
    await runner.setup()
    return runner


async def _round(app: web.Application, token: str, count: int) -> float:
    """One round: `count` requests, the main thread's CPU per request in us."""
    template = stand_in_request(app, LOOKUP, {"Authorization": f"Bearer {token}"})
    paths = [f"{LOOKUP}?INV-{n:04d}" for n in range(1000)]
    started = time.thread_time()
    for first in range(0, count, CONCURRENT):
        responses = await asyncio.gather(*(
            app._handle(template.clone(rel_url=paths[n % len(paths)]))
            for n in range(first, min(count, first + CONCURRENT))))
        if any(response.status != 200 for response in responses):
            raise RuntimeError(f"answered {[r.status for r in responses][:5]}")
    return (time.thread_time() - started) / count * 1e6


async def measure(count: int, rounds: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {kind: [] for kind in APPS}
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data), limits=_limits())
        async with open_access(settings) as access:
            token, _ = await access.keys.create(Role.VERIFY, name="bench")
            runners = {kind: await _app(kind, access) for kind in APPS}
            try:
                for round_no in range(rounds + 1):  # round 0 warms up
                    for kind, runner in runners.items():  # taking turns: the same machine
                        value = await _round(runner.app, token, count)
                        if round_no:
                            figures[kind].append(value)
            finally:
                for runner in runners.values():
                    await runner.cleanup()
    figures["layer - bare"] = [a - b for a, b in zip(figures["layer"], figures["bare"],
                                                      strict=True)]
    figures["fixed - layer"] = [a - b for a, b in zip(figures["fixed"], figures["layer"],
                                                       strict=True)]
    figures["fixed - bare"] = [a - b for a, b in zip(figures["fixed"], figures["bare"],
                                                      strict=True)]
    return figures


def _print(figures: dict[str, list[float]], prefix: str = "") -> None:
    for name, values in figures.items():
        print(f"  {prefix}{name:14s} median {statistics.median(values):6.1f} us   rounds "
              + " ".join(f"{v:.1f}" for v in values))


def _pair(b_tree: Path, count: int, rounds: int) -> None:
    """This file on this checkout and on `b_tree` at once, on one core."""
    here = Path(__file__).resolve()
    trees = {"A": here.parent.parent, "B": b_tree.resolve()}
    procs = {name: subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, str(here), "--json", "--count", str(count),
         "--rounds", str(rounds)], cwd=tree, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(tree)}) for name, tree in trees.items()}
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{name} failed ({proc.returncode})")
        results[name] = json.loads(out.decode().strip().splitlines()[-1])
    for name in trees:
        print(f"{name} ({trees[name]}):")
        _print(results[name])
    ratios = [b / a for a, b in zip(results["A"]["fixed - bare"], results["B"]["fixed - bare"],
                                    strict=True)]
    print(f"fixed - bare, B/A: median {statistics.median(ratios):.2f}, per round "
          + " ".join(f"{r:.2f}" for r in ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--b-tree", type=Path, help="another source tree, measured at once")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.b_tree is not None:
        _pair(args.b_tree, args.count, args.rounds)
        return
    figures = asyncio.run(measure(args.count, args.rounds))
    if args.json:
        print(json.dumps(figures))
    else:
        _print(figures)


if __name__ == "__main__":
    main()
