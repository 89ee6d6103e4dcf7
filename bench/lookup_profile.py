"""Where a lookup's CPU goes: the per-request budget in microseconds, by part.

    .venv/bin/python -m bench.lookup_profile                       # embedded and replica hits
    .venv/bin/python -m bench.lookup_profile --paths bare,embedded --duration 8
    .venv/bin/python -m bench.lookup_profile --paths replica-miss --top 40   # replica misses

The same setup as `bench.lookup` (demo data, a `verify` key, rate limits out of reach,
`--replica`'s Redis replica with a maintenance window declared; `replica-miss` is that
replica server loaded with the not-found URLs only, each answered `unconfirmed` with a gap
written, as `bench.lookup`'s `replica-miss`): for each path the real app
(`create_app`, as `invoice-verify serve` builds it; `bench.bare_server`'s app for `bare`)
runs in a child process of this module, loaded by `wrk` over the same URLs. Each path is
measured twice in a row on one start: first plain (requests/s and the server's CPU per
request, as `bench.lookup` measures them), then with cProfile switched on in the server for
the same duration (SIGUSR1 on, SIGUSR2 off and dump). The profile's own time of every
function is given to a part: a function of ours by its module (and a few by name), a
library function (aiohttp's `request.query`, orjson, redis-py, sqlite3...) to the part of
whatever of ours called it, following cProfile's caller edges by cumulative time, and what
nothing of ours called (the event loop, aiohttp's protocol, parser and writer) to
"aiohttp itself". The table gives each part's share of the profiled CPU and that share of
the plain run's CPU per request (cProfile inflates small Python calls more than C work, so
the shares are approximate; the total is the measured one).

Run from the repository root; needs wrk (installed as in `bench.lookup`) and, for the
replica path, the Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from osmem_server import OsmemServer  # type: ignore[import-untyped]

from bench.es_service import load as load_es
from bench.lookup import (
    REPO,
    Server,
    SetupError,
    WrkResult,
    build_lookups,
    ensure_wrk,
    free_port,
    prepare_replica,
    run_checked,
    run_wrk,
    running,
    service_env,
)
from tests.indexer.store.plain_json import plain_json_client
from verify.settings import Settings

#: Parts of the request path, by our module (path relative to the repository) and, where
#: one module does several things, by function name. First match wins.
_BY_FUNCTION: dict[tuple[str, str], str] = {
    ("verify/access/service.py", "authenticate"): "key check",
    ("verify/access/middleware.py", "guard"): "key check",
    ("verify/lookup/views.py", "lookup"): "parse",
    ("verify/lookup/verification.py", "_facts"): "answer",
    ("verify/lookup/verification.py", "_check_count"): "answer",
    ("verify/lookup/verification.py", "verify_query"): "lookup core (glue)",
    ("verify/lookup/verification.py", "_overlapped"): "lookup core (glue)",
    ("fallback/lookup/resilience.py", "conclude"): "answer",
    ("verify/app.py", "security_headers"): "headers",
}
_BY_MODULE: tuple[tuple[str, str], ...] = (
    ("verify/access/apikeys.py", "key check"),
    ("verify/access/shared_keys.py", "key check"),
    ("verify/access/roles.py", "key check"),
    ("verify/access/ratelimit.py", "rate limit"),
    ("verify/access/service.py", "rate limit"),
    ("verify/access/tenancy.py", "redaction"),
    ("verify/access/audit.py", "audit"),
    ("verify/access/shared_audit.py", "audit"),
    ("verify/http/responses.py", "encode"),
    ("verify/http/middlewares.py", "metrics + error middleware"),
    ("verify/ops/", "metrics + error middleware"),
    ("fallback/metrics.py", "metrics + error middleware"),
    ("verify/http/logs.py", "access log"),
    ("verify/http/params.py", "parse"),
    ("verify/lookup/query.py", "parse"),
    ("verify/lookup/callback_url.py", "parse"),
    ("verify/receipts/flag.py", "parse"),
    ("fallback/lookup/query.py", "parse"),
    ("fallback/redis_trips.py", "redis round trip (read + limits)"),
    ("fallback/lookup/resilience.py", "read"),
    ("fallback/lookup/fetch.py", "read"),
    ("fallback/replica", "read"),
    ("fallback/breaker.py", "read"),
    ("indexer/store/", "read"),
    ("indexer/coalesce.py", "read"),
    ("fallback/lookup/", "answer"),
    ("indexer/registry", "answer"),
    ("verify/receipts/", "answer"),
    ("fallback/health.py", "background tasks"),
    ("fallback/reconciler.py", "background tasks"),
    ("fallback/warmup.py", "background tasks"),
    ("verify/lookup/", "lookup core (glue)"),
    ("bench/", "the bare handler"),
)
AIOHTTP = "aiohttp itself (+ event loop)"
OTHER_THREADS = "other threads (aiosqlite's)"
ORDER = ("the bare handler", "parse", "key check", "rate limit",
         "redis round trip (read + limits)", "read", "answer", "redaction", "audit",
         "encode", "headers", "lookup core (glue)",
         "metrics + error middleware", "access log", "other of ours", "background tasks",
         OTHER_THREADS, AIOHTTP)
Func = tuple[str, int, str]


def _ours(func: Func) -> str | None:
    """The repository-relative path of one of our functions, else None."""
    filename = func[0]
    if not filename.startswith(str(REPO)) or "/.venv/" in filename:
        return None
    return os.path.relpath(filename, REPO)


def part_of(func: Func) -> str | None:
    rel = _ours(func)
    if rel is None:
        return None
    named = _BY_FUNCTION.get((rel, func[2]))
    if named is not None:
        return named
    for prefix, part in _BY_MODULE:
        if rel.startswith(prefix):
            return part
    return "other of ours"


#: Where the event loop waits for the sockets: no CPU, left out.
IDLE = ("~", 0, "<method 'poll' of 'select.epoll' objects>")


def attribute(stats: pstats.Stats, top: int = 0) -> dict[str, float]:
    """Seconds of own time per part (see the module docstring), the wait in epoll left
    out; prints the `top` functions of most own time."""
    raw: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Func, dict[str, float]] = {}

    def shares(func: Func, seen: frozenset[Func]) -> dict[str, float]:
        """How a library function's time divides over the parts of its callers."""
        if func in memo:
            return memo[func]
        part = part_of(func)
        if part is not None:
            return {part: 1.0}
        callers = raw[func][4] if func in raw else {}
        weights = {caller: edge[3] for caller, edge in callers.items()
                   if caller not in seen and edge[3] > 0}
        total = sum(weights.values())
        if not total:
            result = {AIOHTTP: 1.0}
        else:
            result = defaultdict(float)
            for caller, weight in weights.items():
                for name, share in shares(caller, seen | {func}).items():
                    result[name] += share * weight / total
            result = dict(result)
        if len(seen) < 2:  # results cut by a cycle deeper down are not kept
            memo[func] = result
        return result

    seconds: dict[str, float] = defaultdict(float)
    own = {func: row[2] for func, row in raw.items() if func != IDLE}
    for func, spent in own.items():
        for name, share in shares(func, frozenset()).items():
            seconds[name] += spent * share
    total = sum(seconds.values()) or 1.0
    for func in sorted(own, key=lambda f: -own[f])[:top]:
        where = max(shares(func, frozenset()).items(), key=lambda item: item[1])[0]
        print(f"    {own[func] / total:6.1%}  {raw[func][1]:>8}  {where:<34} "
              f"{_ours(func) or os.path.basename(func[0])}:{func[1]} {func[2]}")
    return dict(seconds)


# --------------------------------------------------------------------------- the server


async def _freeze(_app: Any) -> None:
    from verify.cli.heap import freeze_startup_heap

    freeze_startup_heap()


def serve(kind: str, port: int, dump: Path) -> None:
    """The child: the app of `kind` on 127.0.0.1:`port`; SIGUSR1 starts cProfile, SIGUSR2
    stops it and writes the stats to `dump` and its CPU seconds to `dump`.json."""
    from aiohttp import web

    if kind == "bare":
        from bench.bare_server import create_app as bare_app
        app = bare_app()
    elif kind == "es":  # osmem-server, through the tests' plain-JSON client (bench.es_service)
        from tests.indexer.store.plain_json import plain_json_client
        from verify.app import create_app
        from verify.cli.common import load_settings
        from verify.cli.workers import with_own_journal
        from verify.http.logs import AccessLogger, configure_logging
        settings, _claim = with_own_journal(load_settings(host="127.0.0.1", port=port))
        configure_logging(settings.log_level, settings.log_format)
        app = create_app(settings, es_client_factory=plain_json_client)
    else:
        from verify.app import create_app
        from verify.cli.common import load_settings
        from verify.cli.workers import with_own_journal
        from verify.http.logs import AccessLogger, configure_logging
        settings, _claim = with_own_journal(load_settings(host="127.0.0.1", port=port))
        configure_logging(settings.log_level, settings.log_format)
        app = create_app(settings)
    # cProfile's default clock (wall time): the CPU clock of the thread costs a system call
    # per read, which slowed the service tenfold. The wait in epoll is left out (`IDLE`);
    # time the process was preempted falls on whatever ran, in proportion.
    profiler = cProfile.Profile()
    started = [0.0, 0.0]

    def start() -> None:
        started[:] = time.process_time(), time.thread_time()
        profiler.enable()

    def stop() -> None:
        profiler.disable()
        cpu, main = time.process_time() - started[0], time.thread_time() - started[1]
        profiler.dump_stats(dump)
        dump.with_suffix(".json").write_text(json.dumps({"cpu_s": cpu, "main_s": main}))

    async def signals(_app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, start)
        loop.add_signal_handler(signal.SIGUSR2, stop)

    app.on_startup.append(signals)
    app.on_startup.append(_freeze)  # as `serve` does: full collections skip start-up's heap
    # The event loop `serve` would run (INVOICE_EVENT_LOOP, else the default), the bare
    # handler's too, so both are measured on the same kind of loop.
    from verify.settings import DEFAULT_EVENT_LOOP

    loop: asyncio.AbstractEventLoop
    if (os.environ.get("INVOICE_EVENT_LOOP") or DEFAULT_EVENT_LOOP).strip() == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    if kind == "bare":
        web.run_app(app, host="127.0.0.1", port=port, print=None, shutdown_timeout=5,
                    access_log=None, loop=loop)
    else:
        web.run_app(app, host="127.0.0.1", port=port, print=None, shutdown_timeout=5,
                    access_log_class=AccessLogger, loop=loop)


# --------------------------------------------------------------------------- in process


#: Requests handed to the app at once in process (`bench.lookup`'s wrk connections).
CONCURRENT = 32


def stand_in_request(app: Any, path: str, headers: dict[str, str]) -> Any:
    """One GET request made with aiohttp's helper, on plain stand-ins for the connection (its
    mock.Mock ones cost more per attribute than a lookup does); requests of a round are
    clones of it with their own URL, as aiohttp's parser would make them."""
    from aiohttp.test_utils import make_mocked_request

    peer = ("127.0.0.1", 40000)
    transport = SimpleNamespace(get_extra_info=lambda name, default=None: {
        "peername": peer, "sockname": peer}.get(name, default), is_closing=lambda: False)
    protocol = SimpleNamespace(transport=transport, ssl_context=None, peername=peer,
                               sockname=peer, max_field_size=8190, max_line_length=8190,
                               max_headers=128)
    writer = SimpleNamespace(output_size=0, buffer_size=0)
    return make_mocked_request("GET", path, headers=headers, app=app, protocol=protocol,
                               transport=transport, writer=writer)


async def _in_process(paths: list[str], token: str | None, count: int,
                      rounds: int, profiler: cProfile.Profile | None = None) -> list[float]:
    """Our own cost per request, without aiohttp's parser, writer and event loop: the real
    app started (its cleanup contexts, as `serve` does), then `count` requests made with
    aiohttp's `make_mocked_request` handed to the app's handler (router, middlewares, the
    view), `CONCURRENT` at a time; the main thread's CPU per request, per round. With
    `profiler`, one more round runs under it after those (not counted in them)."""
    from aiohttp import web

    from verify.app import create_app
    from verify.cli.common import load_settings
    from verify.cli.workers import with_own_journal

    settings, _claim = with_own_journal(load_settings(host="127.0.0.1", port=free_port()))
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await _freeze(app)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    template = stand_in_request(app, paths[0], headers)
    try:
        results = []
        for round_no in range(rounds + 1 + (profiler is not None)):  # round 0 warms up
            if round_no > rounds and profiler is not None:
                profiler.enable()
            started = time.thread_time()
            for first in range(0, count, CONCURRENT):  # as many at once as wrk's connections
                batch = [paths[index % len(paths)]
                         for index in range(first, min(count, first + CONCURRENT))]
                responses = await asyncio.gather(*(
                    app._handle(template.clone(rel_url=path)) for path in batch))
                for path, response in zip(batch, responses, strict=True):
                    if response.status != 200:
                        raise SetupError(f"{path} answered {response.status}")
            if profiler is not None and round_no > rounds:
                profiler.disable()
            elif round_no:
                results.append((time.thread_time() - started) / count * 1e6)
        return results
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- the driver


def _profiled(server: Server, wrk: list[str], args: argparse.Namespace, paths: Path,
              token: str | None, dump: Path) -> tuple[WrkResult, WrkResult, dict[str, float],
                                                      float]:
    with running(server):
        assert server.proc is not None
        run_wrk(wrk, server, args, args.warmup, paths, token)
        plain = run_wrk(wrk, server, args, args.duration, paths, token)
        server.proc.send_signal(signal.SIGUSR1)
        profiled = run_wrk(wrk, server, args, args.duration, paths, token)
        server.proc.send_signal(signal.SIGUSR2)
        sidecar = dump.with_suffix(".json")
        deadline = time.monotonic() + 60
        while not sidecar.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not sidecar.exists():
            raise SetupError(f"the {server.name} server wrote no profile:\n"
                             f"{server.log_tail()}")
        cpu = json.loads(sidecar.read_text())
    # What the other threads (aiosqlite's) used is not in the profile: its own row. The
    # main thread's parts add up to the plain run's CPU per request less theirs.
    count = profiled.requests
    other_us = max(0.0, cpu["cpu_s"] - cpu["main_s"]) / count * 1e6
    main_us = max(0.0, plain.server_cpu / plain.rps * 1e6 - other_us)
    if args.top:
        print(f"  {server.name}: the {args.top} functions of most own time (share, calls, part)")
    seconds = attribute(pstats.Stats(str(dump)), args.top)
    total = sum(seconds.values()) or 1.0
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(dump, args.keep / dump.name)
    parts = {name: spent / total * main_us for name, spent in seconds.items()}
    parts[OTHER_THREADS] = other_us
    return plain, profiled, parts, float(cpu["cpu_s"])


def _print_table(rows: dict[str, tuple[WrkResult, WrkResult, dict[str, float], float]]) -> None:
    names = list(rows)
    print()
    print("per request, us of CPU (each part's share of the profile, epoll's wait left out, "
          "x the plain run's CPU per request)")
    print(f"{'part':<36}" + "".join(f"{name:>14}" for name in names))
    per_request = {name: rows[name][0].server_cpu / rows[name][0].rps * 1e6 for name in names}
    parts = [p for p in ORDER if any(rows[n][2].get(p) for n in names)]
    for part in parts:
        cells = "".join(f"{rows[n][2].get(part, 0.0):14.1f}"
                        for n in names)
        print(f"{part:<36}{cells}")
    print(f"{'total (measured)':<36}" + "".join(f"{per_request[n]:14.1f}" for n in names))
    print(f"{'plain req/s':<36}" + "".join(f"{rows[n][0].rps:14.0f}" for n in names))
    print(f"{'plain server CPU':<36}" + "".join(f"{rows[n][0].server_cpu:14.0%}"
                                                  for n in names))
    print(f"{'profiled req/s':<36}" + "".join(f"{rows[n][1].rps:14.0f}" for n in names))
    print(f"{'us/request with cProfile on':<36}"
          + "".join(f"{rows[n][3] / rows[n][1].requests * 1e6:14.1f}" for n in names))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--paths", default="bare,embedded,replica",
                        help="comma-separated: bare, embedded, replica, replica-miss (the "
                             "replica server loaded with the not-found URLs: each answered "
                             "`unconfirmed` with a gap written), es (osmem-server)")
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--urls", type=int, default=4000)
    parser.add_argument("--per-series", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--top", type=int, default=0,
                        help="also print each path's N functions of most own time, with their part")
    parser.add_argument("--keep", type=Path, help="copy the profiles (.prof) into this directory")
    parser.add_argument("--in-process", type=int, default=0, metavar="N",
                        help="instead: N requests per round handed to the app in this process "
                             "(no HTTP, no wrk), our CPU per request, per path (not bare)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --in-process")
    parser.add_argument("--serve", choices=("bare", "service", "es"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.dump)
        return 0
    wanted = [p for p in args.paths.split(",") if p]
    unknown = set(wanted) - {"bare", "embedded", "replica", "replica-miss", "es"}
    if unknown:
        print(f"unknown paths: {sorted(unknown)}", file=sys.stderr)
        return 2
    print(f"reproduce: .venv/bin/python -m bench.lookup_profile {' '.join(argv or sys.argv[1:])}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        return _run(args, wanted, workdir)
    except SetupError as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, wanted: list[str], workdir: Path) -> int:
    wrk = [ensure_wrk()]
    service = [str(Path(sys.executable).parent / "invoice-verify")]
    env = service_env()
    data = workdir / "data"
    run_checked([*service, "demo", "--data-dir", str(data), "--per-series",
                 str(args.per_series)], "invoice-verify demo", env)
    lookups = build_lookups(data / "invoices.sqlite3", args.urls, args.seed)
    paths = {"all": workdir / "paths.txt", "found": workdir / "paths-found.txt",
             "missing": workdir / "paths-missing.txt"}
    paths["all"].write_text("".join(f"{lookup.path}\n" for lookup in lookups))
    paths["found"].write_text("".join(f"{lookup.path}\n" for lookup in lookups
                                      if lookup.expected != "not_found"))
    paths["missing"].write_text("".join(f"{lookup.path}\n" for lookup in lookups
                                        if lookup.expected == "not_found"))
    token = run_checked([*service, "keys", "create", "--role", "verify", "--name", "bench",
                         "--data-dir", str(data)], "creating an API key",
                        env).strip().splitlines()[-1]

    def child(name: str, kind: str, child_env: dict[str, str]) -> Server:
        port = free_port()
        cmd = [sys.executable, "-m", "bench.lookup_profile", "--serve", kind, "--port",
               str(port), "--dump", str(workdir / f"{name}.prof")]
        return Server(name, cmd, child_env, port, workdir / f"{name}.log")

    stack = contextlib.ExitStack()
    plan: list[tuple[Server, Path, str | None]] = []
    replica: tuple[dict[str, str], str] | None = None  # one replica data directory for both
    for name in wanted:
        if name == "bare":
            plan.append((child("bare", "bare", env), paths["all"], None))
        elif name == "es":
            osmem = OsmemServer.start(japanese=False)
            stack.callback(osmem.close)
            es_env = {**env, "INVOICE_DATA_DIR": str(data), "INVOICE_ES_URL": osmem.url,
                      "INVOICE_ES_INDEX_PREFIX": "bench"}
            print("loading the demo data into osmem-server ...", flush=True)
            asyncio.run(load_es(Settings.from_env(es_env), plain_json_client, args.per_series))
            plan.append((child("es", "es", es_env), paths["all"], token))
        elif name == "embedded":
            plan.append((child("embedded", "service", {**env, "INVOICE_DATA_DIR": str(data)}),
                         paths["all"], token))
        else:  # replica (the found URLs) or replica-miss (the not-found ones, as bench.lookup)
            if replica is None:
                replica_servers, replica_token = prepare_replica(args, service, env, [],
                                                                 workdir, lookups)
                replica = ({**next(s for s in replica_servers if s.name == "replica").env,
                            "INVOICE_DATA_DIR": str(workdir / "replica-data")}, replica_token)
            plan.append((child(name, "service", replica[0]),
                         paths["found" if name == "replica" else "missing"], replica[1]))
    with stack:
        if args.in_process:
            return _run_in_process(args, plan)
        rows = {}
        for server, path_file, key in plan:
            plain, profiled, parts, cpu = _profiled(server, wrk, args, path_file, key,
                                                    workdir / f"{server.name}.prof")
            rows[server.name] = (plain, profiled, parts, cpu)
            print(f"  {server.name}: plain {plain.rps:.0f} req/s, server CPU "
                  f"{plain.server_cpu:.0%} ({plain.server_cpu / plain.rps * 1e6:.0f} "
                  f"us/request); profiled {profiled.rps:.0f} req/s", flush=True)
        _print_table(rows)
    return 0


def _run_in_process(args: argparse.Namespace,
                    plan: list[tuple[Server, Path, str | None]]) -> int:
    print(f"in process, {args.in_process} requests per round, {args.rounds} rounds: "
          "CPU per request in us (the main thread's)")
    for server, path_file, key in plan:
        if server.name in {"bare", "es"}:  # no HTTP here; es needs osmem's client
            continue
        paths = path_file.read_text().split()
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(server.env)
        profiler = cProfile.Profile() if args.top else None
        try:
            per = asyncio.run(_in_process(paths, key, args.in_process, args.rounds, profiler))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        print(f"  {server.name:<10} median {statistics.median(per):7.1f} us   rounds "
              + " ".join(f"{v:.1f}" for v in per), flush=True)
        if profiler is not None:  # the parts of our CPU alone, from one more round
            print(f"  {server.name}: the {args.top} functions of most own time in one more "
                  "round under cProfile (share, calls, part)")
            seconds = attribute(pstats.Stats(profiler), args.top)
            total = sum(seconds.values()) or 1.0
            median = statistics.median(per)
            for part in [p for p in ORDER if seconds.get(p)]:
                print(f"    {part:<36}{seconds[part] / total * median:8.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
