"""Lookup throughput and latency of the embedded default against a bare aiohttp JSON handler.

Loads the demo data into a temporary data directory, runs the real service
(`invoice-verify serve`) and a bare aiohttp app (`bench.bare_server`) one at a time on
127.0.0.1, and drives each with `wrk` over the same few thousand varied lookup URLs (every
key form, found and not found). Each round restarts the server, warms it up, then measures;
rounds alternate bare/embedded. Prints the medians (requests/s, p50, p99) and the ratio
embedded/bare throughput; `--es` and `--replica` add the Elasticsearch-backed service and the
replica paths (hits and misses apart), each as a ratio to the same bare runs.

Run from the repository root: `.venv/bin/python -m bench.lookup` (`--help` for the knobs).
Exits non-zero only when the setup fails, or with `--expect-ratio R` when the ratio is below R.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

import aiohttp
from osmem_server import OsmemServer  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.es_counting import ENV as ES_COUNTS_ENV
from bench.es_counting import per_lookup, read_counts
from indexer.money import format_amount, from_scaled

REPO = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "lookup.lua"
LOOKUP = "/api/v1/invoices/lookup"
STATUSES = frozenset({"valid", "not_found", "cancelled", "replaced", "adjusted", "mismatch",
                      "outside_window"})
#: Lifecycle (indexer.model.Lifecycle) -> the answer's status: every lifecycle but `issued`
#: is its own status, Chinese red letters included.
_LIFECYCLE_STATUS = {"issued": "valid", "cancelled": "cancelled", "replaced": "replaced",
                     "adjusted": "adjusted", "partially_reversed": "partially_reversed",
                     "reversed": "reversed"}
#: The service's event loop when INVOICE_EVENT_LOOP is unset (verify/settings.py); the
#: bare handler runs on the same kind.
DEFAULT_LOOP = "asyncio"
#: Rate limits raised far out of reach: the limiter still runs on every request, but the bench
#: measures lookups, not 429s (the defaults allow 20 requests/s per key).
_NO_LIMITS = {
    "INVOICE_RATE_KEY_PER_MINUTE": "1000000000",
    "INVOICE_RATE_KEY_BURST": "1000000000",
    "INVOICE_RATE_INVOICE_PER_DAY": "1000000000",
    "INVOICE_RATE_MISSES_PER_HOUR": "1000000000",
}
#: Share of each kind of lookup in the URL list.
MIX: dict[str, float] = {
    "vn_key": 0.22,
    "vn_key_total": 0.06,  # with the right total_amount: still valid (or its lifecycle)
    "vn_key_mismatch": 0.04,  # with a wrong total_amount: mismatch
    "authority_code": 0.14,
    "cn_code": 0.14,  # code + 8-digit number, half of them with the check code's last 6
    "cn_20": 0.14,
    "vn_key_missing": 0.08,
    "authority_code_missing": 0.06,
    "cn_code_missing": 0.06,
    "cn_20_missing": 0.06,
}


class SetupError(RuntimeError):
    """The bench could not be set up; the message says what to fix."""


# --------------------------------------------------------------------------- lookups


@dataclass(frozen=True, slots=True)
class Lookup:
    kind: str
    path: str
    expected: str


def _vn_params(row: sqlite3.Row) -> dict[str, str]:
    return {"seller_tax_id": row["seller_tax_id"], "template": row["template"],
            "series": row["series"], "number": str(row["number"])}


def _path(params: dict[str, str]) -> str:
    return f"{LOOKUP}?{urlencode(params)}"


def build_lookups(db: Path, count: int, seed: int) -> list[Lookup]:
    """`count` lookups drawn from the loaded invoices in the proportions of `MIX`."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT scheme, lifecycle, seller_tax_id, template, series, number,"
            " authority_code, invoice_code, invoice_number, total_amount, check_code"
            " FROM invoices ORDER BY doc_id").fetchall()
    finally:
        conn.close()
    vn = [r for r in rows if r["scheme"] == "vn"]
    vn_issued = [r for r in vn if r["lifecycle"] == "issued"]
    vn_coded = [r for r in vn if r["authority_code"]]
    cn_code = [r for r in rows if r["scheme"] == "cn" and r["invoice_code"]]
    cn_20 = [r for r in rows if r["scheme"] == "cn" and not r["invoice_code"]]
    if not (vn_issued and vn_coded and cn_code and cn_20):
        raise SetupError(f"demo data in {db} lacks a key form (vn {len(vn)}, with authority "
                         f"code {len(vn_coded)}, cn coded {len(cn_code)}, cn 20-digit "
                         f"{len(cn_20)})")
    codes = {r["authority_code"] for r in vn_coded}
    cn_numbers = {(r["invoice_code"], r["invoice_number"]) for r in rows if r["scheme"] == "cn"}
    max_vn = max(r["number"] for r in vn)
    rng = random.Random(seed)

    def status(row: sqlite3.Row) -> str:
        return _LIFECYCLE_STATUS.get(row["lifecycle"], "valid")

    def one(kind: str) -> Lookup:
        if kind in {"vn_key", "vn_key_total"}:
            row = rng.choice(vn)
            params = _vn_params(row)
            if kind == "vn_key_total":
                params["total_amount"] = format_amount(from_scaled(row["total_amount"]))
            return Lookup(kind, _path(params), status(row))
        if kind == "vn_key_mismatch":
            row = rng.choice(vn_issued)
            params = {**_vn_params(row),
                      "total_amount": format_amount(from_scaled(row["total_amount"]) + 1)}
            return Lookup(kind, _path(params), "mismatch")
        if kind == "authority_code":
            row = rng.choice(vn_coded)
            return Lookup(kind, _path({"authority_code": row["authority_code"]}), status(row))
        if kind == "cn_code":
            row = rng.choice(cn_code)
            params = {"code": row["invoice_code"], "number": row["invoice_number"]}
            if row["check_code"] and rng.random() < 0.5:
                params["check_code"] = row["check_code"][-6:]
            return Lookup(kind, _path(params), status(row))
        if kind == "cn_20":
            row = rng.choice(cn_20)
            return Lookup(kind, _path({"number": row["invoice_number"]}), status(row))
        if kind == "vn_key_missing":
            params = {**_vn_params(rng.choice(vn)),
                      "number": str(rng.randint(max_vn + 1, max_vn + 1_000_000))}
            return Lookup(kind, _path(params), "not_found")
        if kind == "authority_code_missing":
            code = "".join(rng.choice("0123456789ABCDEF") for _ in range(34))
            while code in codes:
                code = "".join(rng.choice("0123456789ABCDEF") for _ in range(34))
            return Lookup(kind, _path({"authority_code": code}), "not_found")
        if kind == "cn_code_missing":
            code = rng.choice(cn_code)["invoice_code"]
            number = f"{rng.randrange(10**8):08d}"
            while (code, number) in cn_numbers:
                number = f"{rng.randrange(10**8):08d}"
            return Lookup(kind, _path({"code": code, "number": number}), "not_found")
        assert kind == "cn_20_missing", kind
        # A 数电 number's first two digits are its year: keep a loaded one's, so the miss is
        # `not_found` and not `outside_window` (fallback/lookup/window.py).
        year = rng.choice(cn_20)["invoice_number"][:2]
        number = f"{year}{rng.randrange(10**18):018d}"
        while (None, number) in cn_numbers:
            number = f"{year}{rng.randrange(10**18):018d}"
        return Lookup(kind, _path({"number": number}), "not_found")

    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    return [one(kind) for kind in kinds]


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_command() -> list[str]:
    script = Path(sys.executable).parent / "invoice-verify"
    if script.exists():
        return [str(script)]
    found = shutil.which("invoice-verify")
    if found is None:
        raise SetupError("invoice-verify is not installed in this environment "
                         "(pip install -e . in the virtualenv)")
    return [found]


def service_env() -> dict[str, str]:
    """The caller's environment without INVOICE_* settings, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_")}
    env.update(_NO_LIMITS)
    env["INVOICE_LOG_LEVEL"] = "WARNING"  # access lines are INFO: keep logging out of it
    env["INVOICE_HOST"] = "127.0.0.1"
    # Every round restarts the server; the in-memory replica's warm-up from the primary
    # (seconds of CPU at start, fallback/warmup.py) would overlap the measurement. The bench
    # measures the steady state of lookups, so it is off; the primary path never reads the
    # in-memory replica, and the Redis replica is not warmed anyway.
    env["INVOICE_REPLICA_WARM_UP"] = "0"
    return env


def run_checked(cmd: Sequence[str], what: str, env: dict[str, str] | None = None,
                timeout: float = 300) -> str:
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} took more than {timeout:.0f} s: {shlex.join(cmd)}") from None
    if done.returncode != 0:
        raise SetupError(f"{what} failed (exit {done.returncode}): {shlex.join(cmd)}\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SetupError("wrk is missing: install it (Debian: apt-get install -y wrk)")
    print("wrk is missing: installing it with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        run_checked(["apt-get", "update", "-q"], "apt-get update", env)
        run_checked(install, "apt-get install wrk", env)
    found = shutil.which("wrk")
    if found is None:
        raise SetupError("apt-get installed wrk but it is not on PATH")
    return found


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    cwd: Path = REPO

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"the {self.name} server exited with {self.proc.returncode} "
                                 f"before answering /healthz:\n{self.log_tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.1)
        raise SetupError(f"the {self.name} server did not answer {url} within {timeout:.0f} s:"
                         f"\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def cpu_seconds(self) -> float:
        """User + system CPU so far of the server process and every process under it (all
        their threads): `serve --workers N`'s workers count too."""
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and its living descendants (from /proc)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid], ticks[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- checks


def fetch(url: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(body)
        return exc.code, body[:300]


def check_sample(port: int, lookups: list[Lookup], token: str | None,
                 size: int) -> tuple[Counter[str], list[str]]:
    """Every sampled URL must answer 200 with a known status; abort otherwise. Returns the
    statuses seen and the lookups whose status differed from the one the data implies."""
    step = max(1, len(lookups) // size)
    seen: Counter[str] = Counter()
    surprises: list[str] = []
    for lookup in lookups[::step]:
        code, body = fetch(f"http://127.0.0.1:{port}{lookup.path}", token)
        status = body.get("status") if isinstance(body, dict) else None
        if code != 200 or status not in STATUSES:
            raise SetupError(f"lookup check failed: GET {lookup.path} answered {code} "
                             f"{json.dumps(body, ensure_ascii=False)[:500]}")
        seen[status] += 1
        if status != lookup.expected:
            surprises.append(f"{lookup.kind}: expected {lookup.expected}, got {status}: "
                             f"{lookup.path}")
    return seen, surprises


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: dict[str, int]
    server_cpu: float  # share of one core used by the server process over the run
    wrk_cpu: float  # same for wrk

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(wrk: list[str], server: Server, args: argparse.Namespace, duration: float,
            paths_file: Path, token: str | None) -> WrkResult:
    cmd = [*wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration:g}s",
           "--timeout", "5s", "-s", str(LUA), f"http://127.0.0.1:{server.port}",
           "--", str(paths_file)]
    env = {**os.environ, "BENCH_TOKEN": token or ""}
    cpu_before, children_before = server.cpu_seconds(), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                              timeout=duration + 60)
    except subprocess.TimeoutExpired:
        raise SetupError(f"wrk did not finish: {shlex.join(cmd)}") from None
    wall = time.monotonic() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = (server.cpu_seconds() - cpu_before) / wall
    wrk_cpu = (children.ru_utime + children.ru_stime - children_before.ru_utime
               - children_before.ru_stime) / wall
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not lines:
        raise SetupError(f"wrk failed (exit {done.returncode}): {shlex.join(cmd)}\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    raw = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    errors = {k: int(raw[k]) for k in ("connect", "read", "write", "status", "timeout")
              if raw[k]}
    if errors:
        print(f"  ! {server.name}: wrk reported errors {errors} "
              f"(status = non-2xx/3xx answers) of {raw['requests']} requests", flush=True)
    return WrkResult(rps=raw["requests"] / (raw["duration_us"] / 1e6),
                     p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
                     requests=int(raw["requests"]), errors=errors,
                     server_cpu=server_cpu, wrk_cpu=wrk_cpu)


# --------------------------------------------------------------------------- report


def machine_info(wrk: str) -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    wrk_version = (version.stdout or version.stderr).splitlines()[0:1] or ["unknown"]
    return [
        f"machine: nproc {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), "
        f"cpu {model!r}, {platform.system()} {platform.release()}",
        f"python {platform.python_version()} ({sys.executable}), aiohttp {aiohttp.__version__}, "
        f"{wrk_version[0].strip()}",
    ]


def _row(name: str, results: list[WrkResult]) -> str:
    rps = statistics.median(r.rps for r in results)
    p50 = statistics.median(r.p50_ms for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    cpu = statistics.median(r.server_cpu for r in results)
    wrk_cpu = statistics.median(r.wrk_cpu for r in results)
    rounds = " ".join(f"{r.rps:.0f}" for r in results)
    return (f"{name:<12} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {cpu:>7.0%} {wrk_cpu:>7.0%}"
            f"   {rounds}")


def _ratio(name: str, top: list[WrkResult], bottom: list[WrkResult]) -> float:
    ratio = statistics.median(r.rps for r in top) / statistics.median(r.rps for r in bottom)
    per_round = " ".join(f"{t.rps / b.rps:.2f}" for t, b in zip(top, bottom, strict=True))
    print(f"{name:<44} {ratio:.2f}   per round: {per_round}")
    return ratio


def report(results: dict[str, list[WrkResult]]) -> float:
    """Print the table and the ratios; returns embedded (keys + limits) / bare."""
    print()
    print(f"{'server':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'srv cpu':>7} "
          f"{'wrk cpu':>7}   req/s per round")
    for name, runs in results.items():
        print(_row(name, runs))
    print("ratios of throughput (medians):")
    ratio = 0.0
    if "embedded" in results:
        ratio = _ratio("embedded (keys + rate limits) / bare", results["embedded"],
                       results["bare"])
    cost = 1.0
    if "no-auth" in results:
        _ratio("embedded without keys or limits / bare", results["no-auth"], results["bare"])
        cost = _ratio("keys + rate limits / without them", results["embedded"],
                      results["no-auth"])
    if "replica" in results:
        _ratio("replica hits (primary in maintenance) / bare", results["replica"],
               results["bare"])
        _ratio("replica misses (unconfirmed + gap) / bare", results["replica-miss"],
               results["bare"])
        _ratio("replica floor (bare + one Redis GET) / bare", results["replica-floor"],
               results["bare"])
        _ratio("replica hits / their floor", results["replica"], results["replica-floor"])
        _ratio("replica hits, answers reused / always built", results["replica"],
               results["replica-built"])
        _ratio("replica misses / the floor", results["replica-miss"],
               results["replica-floor"])
    if "es" in results:
        if "bare" in results:
            _ratio("on Elasticsearch (keys + limits) / bare", results["es"], results["bare"])
        es_ratio = _ratio("on Elasticsearch / its floor (one GET by id)", results["es"],
                          results["es-floor"])
        ratio = ratio or es_ratio
        if "es-b" in results:
            _ratio("es-b (--es-b-tree) / its floor", results["es-b"], results["es-floor"])
            _ratio("es / es-b", results["es"], results["es-b"])
        for name in ("es", "es-b", "es-floor"):
            if name not in results:
                continue
            per = [r.server_cpu / r.rps * 1e6 for r in results[name]]
            print(f"  {name}: server CPU per lookup {statistics.median(per):.0f} us "
                  f"(per round {' '.join(f'{p:.0f}' for p in per)}; the cluster's own "
                  "CPU not counted)")
    if "bare-uvloop" in results:
        bare_gain = _ratio("bare on uvloop / on asyncio", results["bare-uvloop"],
                           results["bare"])
        service_gain = _ratio("embedded on uvloop / on asyncio", results["embedded-uvloop"],
                              results["embedded"])
        _ratio("embedded on uvloop / bare on uvloop", results["embedded-uvloop"],
               results["bare-uvloop"])
        print(f"  uvloop raises the service {'more' if service_gain > bare_gain else 'less'}"
              f" than the bare handler ({service_gain:.2f}x against {bare_gain:.2f}x)")
    workers = sorted(int(name.removeprefix("workers-")) for name in results
                     if name.startswith("workers-"))
    for count in workers:
        _ratio(f"{count} worker(s) / 1 process (embedded)", results[f"workers-{count}"],
               results["embedded"])
    if "no-auth" in results:
        print(f"  cost of keys and rate limits on the hot path: {1 - cost:.0%} of throughput")
    errors = sum(r.error_count for runs in results.values() for r in runs)
    print(f"wrk errors (socket errors, timeouts, non-2xx): {errors}")
    return ratio


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lookup", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server")
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per start")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (-c)")
    parser.add_argument("--urls", type=int, default=4000, help="distinct lookup URLs")
    parser.add_argument("--per-series", type=int, default=2500, help="demo invoices per series")
    parser.add_argument("--seed", type=int, default=1, help="seed of the URL mix")
    parser.add_argument("--check", type=int, default=200, help="URLs checked before timing")
    parser.add_argument("--pin", action="store_true",
                        help="taskset: wrk on CPU 0, the server on CPU 1 (both servers alike)")
    parser.add_argument("--expect-ratio", type=float, default=None,
                        help="exit 1 if embedded/bare throughput is below this (off by default)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--replica", action="store_true",
                        help="also the replica paths: a declared maintenance window on the "
                             "primary, lookups answered from a real Redis replica, hits (URLs "
                             "of invoices it holds) and misses (unconfirmed + gap) measured apart "
                             "(127.0.0.1:6379)")
    parser.add_argument("--workers", type=_counts, default=None, metavar="N,M,...",
                        help="the embedded service (keys + limits) as `serve --workers N` for "
                             "each count, against the one-process `embedded` of the same "
                             "rounds (no-auth is left out); e.g. 1,2")
    parser.add_argument("--uvloop", action="store_true",
                        help="bare and embedded each on asyncio's loop and on uvloop "
                             "(INVOICE_EVENT_LOOP), in the same rounds; no-auth left out")
    parser.add_argument("--es", action="store_true",
                        help="also the service on Elasticsearch (osmem-server on loopback, or "
                             "the cluster at INVOICE_ES_URL), loaded with the same demo data")
    parser.add_argument("--es-b-tree", type=Path, default=None, metavar="DIR",
                        help="with --es: also `es-b`, the ES service of another source tree "
                             "(a worktree of another commit), in the same rounds")
    parser.add_argument("--es-only", action="store_true",
                        help="with --es: only es-floor and es (no bare, no embedded)")
    args = parser.parse_args(argv)
    if (args.es_only or args.es_b_tree) and not args.es:
        parser.error("--es-only and --es-b-tree need --es")
    if args.rounds < 1 or args.duration <= 0 or args.connections < args.threads:
        parser.error("need --rounds >= 1, --duration > 0 and --connections >= --threads")
    return args


REDIS_URL = "redis://127.0.0.1:6379/0"


def floor_ids(db: Path, lookups: list[Lookup], seed: int) -> list[str]:
    """The ids the ES floor reads in turn: the stored invoices' ids, and missing ones in the
    share of not-found lookups among the bench's URLs."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = [str(row[0]) for row in conn.execute("SELECT doc_id FROM invoices")]
    finally:
        conn.close()
    missing = sum(lookup.expected == "not_found" for lookup in lookups) / len(lookups)
    absent = [f"vn:0000000000:1:C99ZZZ:{n}"
              for n in range(int(len(ids) * missing / (1 - missing)))]
    mixed = ids + absent
    random.Random(seed).shuffle(mixed)
    return mixed


def _counts(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("worker counts are whole numbers from 1, e.g. 1,2")
    return counts


def prepare_replica(args: argparse.Namespace, service: list[str], env: dict[str, str],
                    server_prefix: list[str], workdir: Path,
                    lookups: list[Lookup]) -> tuple[list[Server], str]:
    """A second data directory whose demo load writes through to Redis (a namespace of its
    own, deleted at exit), a maintenance window declared on its primary, and the service on
    it: every lookup is then answered from the replica. Two servers on it, measured apart:
    `replica` gets the URLs of invoices the replica holds (the replica-hit path), and
    `replica-miss` the not-found ones, each answered `unconfirmed` with a gap written to the
    ledger (a different cost: a durable write per distinct key). A third, `replica-floor`
    (`bench.redis_floor`), is the bare handler with one Redis GET of a replica document per
    request: the round trip no replica lookup can do without. And `replica-built`, the
    replica-hit path with its answers never reused (`INVOICE_ANSWER_REUSE_REPLICA_MS=0`), in
    the same rounds: what keeping and reusing replica answers for their moment does."""
    data = workdir / "replica-data"
    namespace = f"bench:{uuid.uuid4().hex[:12]}"
    replica_env = {**env, "INVOICE_REDIS_URL": REDIS_URL, "INVOICE_REDIS_NAMESPACE": namespace}
    atexit.register(drop_namespace, namespace)
    print(f"loading the demo data again, written through to Redis ({namespace}) ...",
          flush=True)
    run_checked([*service, "demo", "--data-dir", str(data), "--per-series",
                 str(args.per_series)], "invoice-verify demo (replica)", replica_env)
    token = run_checked([*service, "keys", "create", "--role", "verify", "--name", "bench",
                         "--data-dir", str(data)], "creating an API key",
                        replica_env).strip().splitlines()[-1]
    now = datetime.now(UTC)
    run_checked([*service, "outage", "declare", "--from", (now - timedelta(minutes=1)).isoformat(),
                 "--to", (now + timedelta(hours=3)).isoformat(), "--system", "primary",
                 "--reason", "bench: replica-hit path", "--data-dir", str(data)],
                "declaring the maintenance window", replica_env)
    floor_port = free_port()
    servers = [Server("replica-floor", [*server_prefix, sys.executable, "-m",
                                        "bench.redis_floor", "--port", str(floor_port),
                                        "--redis-url", REDIS_URL, "--namespace", namespace],
                      env, floor_port, workdir / "replica-floor.log")]
    built_env = {**replica_env, "INVOICE_ANSWER_REUSE_REPLICA_MS": "0"}
    for name, server_env in (("replica", replica_env), ("replica-built", built_env),
                             ("replica-miss", replica_env)):
        port = free_port()
        servers.append(Server(name, [*server_prefix, *service, "serve", "--host", "127.0.0.1",
                                     "--port", str(port), "--data-dir", str(data)],
                              server_env, port, workdir / f"{name}.log"))
    server = servers[1]
    with running(server):
        found = [lookup for lookup in lookups if lookup.expected != "not_found"][:50]
        for lookup in found:
            code, body = fetch(f"http://127.0.0.1:{server.port}{lookup.path}", token)
            if code != 200 or not isinstance(body, dict) or body.get("source") != "replica" \
                    or body.get("status") != lookup.expected:
                raise SetupError(f"the replica server answered {code} {body!r} for "
                                 f"{lookup.path}: not the replica answer {lookup.expected}")
    print(f"  checked: {len(found)} found invoices answered from the replica as expected")
    return servers, token


def drop_namespace(namespace: str) -> None:
    """Delete the bench's Redis keys (the replica docs and rate-limit buckets)."""
    async def drop() -> None:
        client = Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start:start + 1000])
        finally:
            await client.aclose()

    with contextlib.suppress(OSError, RedisError):
        asyncio.run(drop())


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: servers stopped, temp dir removed


def es_b_server(tree: Path, es_server: Server, data: Path, workdir: Path) -> Server:
    """`es` as another source tree runs it (`--es-b-tree`): the same command, cluster,
    key, with `PYTHONPATH` and the working directory set to the tree, a copy of the data
    directory (each build's own local files and shipment marks) and an index prefix of its
    own (the same demo data loaded again; the shared state apart: one build's gaps are not
    the other's)."""
    copy = workdir / "data-b"
    shutil.copytree(data, copy)
    port = free_port()
    cmd = [str(copy) if part == str(data) else part for part in es_server.cmd]
    cmd[cmd.index(str(es_server.port))] = str(port)
    cmd += ["--prefix", "bench-b"]  # its own shared state (gaps, keys, trail) and invoices
    env = {**es_server.env, "PYTHONPATH": str(tree),
           ES_COUNTS_ENV: str(workdir / "es-b-counts.json")}
    server = Server("es-b", cmd, env, port, workdir / "es-b.log", cwd=tree)
    print("loading the demo data into Elasticsearch for es-b ...", flush=True)
    server.start(timeout=600)
    server.stop()
    return server


def check_embedded(no_auth: Server, embedded: Server, bare: Server, lookups: list[Lookup],
                   token: str, check: int) -> None:
    """The no-auth, embedded and bare servers answer the sample as expected."""
    with running(no_auth):
        code, body = fetch(f"http://127.0.0.1:{no_auth.port}{lookups[0].path}", None)
        if code != 200 or not isinstance(body, dict) or body.get("status") not in STATUSES:
            raise SetupError(f"the service without keys answered {code} {body!r}")
    with running(embedded):
        seen, surprises = check_sample(embedded.port, lookups, token, check)
    print("  checked: " + ", ".join(f"{k} {n}" for k, n in seen.most_common())
          + f" (of {sum(seen.values())} sampled URLs, all 200)")
    for line in surprises[:10]:
        print(f"  ! unexpected answer: {line}")
    with running(bare):
        code, body = fetch(f"http://127.0.0.1:{bare.port}{lookups[0].path}", token)
        if code != 200 or not isinstance(body, dict) or body.get("status") not in STATUSES:
            raise SetupError(f"the bare server answered {code} {body!r}")


def bench(args: argparse.Namespace, workdir: Path, es_url: str | None,
          real_es: bool) -> float:
    wrk = [ensure_wrk()]
    service = _service_command()
    env = service_env()
    for line in machine_info(wrk[0]):
        print(line)
    server_prefix: list[str] = []
    if args.pin:
        if len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None:
            raise SetupError("--pin needs two usable CPUs and taskset")
        wrk, server_prefix = ["taskset", "-c", "0", *wrk], ["taskset", "-c", "1"]

    data = workdir / "data"
    print(f"loading demo data ({args.per_series} per series) into {data} ...", flush=True)
    started = time.monotonic()
    run_checked([*service, "demo", "--data-dir", str(data), "--per-series",
                 str(args.per_series)], "invoice-verify demo", env)
    lookups = build_lookups(data / "invoices.sqlite3", args.urls, args.seed)
    paths_file = workdir / "paths.txt"
    paths_file.write_text("".join(f"{lookup.path}\n" for lookup in lookups))
    paths = {"replica": workdir / "paths-found.txt", "replica-miss": workdir / "paths-missing.txt"}
    paths["replica-built"] = paths["replica"]
    paths["replica"].write_text("".join(f"{lookup.path}\n" for lookup in lookups
                                        if lookup.expected != "not_found"))
    paths["replica-miss"].write_text("".join(f"{lookup.path}\n" for lookup in lookups
                                             if lookup.expected == "not_found"))
    kinds = Counter(lookup.kind for lookup in lookups)
    expected = Counter(lookup.expected for lookup in lookups)
    print(f"  {len(lookups)} lookup URLs in {time.monotonic() - started:.1f} s; kinds: "
          + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print("  expected answers: " + ", ".join(f"{k} {n}" for k, n in expected.most_common()))

    token = run_checked([*service, "keys", "create", "--role", "verify", "--name",
                         "bench", "--data-dir", str(data)], "creating an API key",
                        env).strip().splitlines()[-1]

    def service_server(name: str, server_env: dict[str, str], workers: int = 1) -> Server:
        port = free_port()
        more = ["--workers", str(workers)] if workers > 1 else []
        return Server(name, [*server_prefix, *service, "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--data-dir", str(data), *more],
                      server_env, port, workdir / f"{name}.log")

    if args.uvloop:  # each server on both loops, named apart, all in the same rounds
        env["INVOICE_EVENT_LOOP"] = "asyncio"
    embedded = service_server("embedded", env)
    no_auth = service_server("no-auth", {**env, "INVOICE_INSECURE_LOCAL": "1"})

    def bare_server(name: str, loop: str) -> Server:
        port = free_port()
        return Server(name, [*server_prefix, sys.executable, "-m", "bench.bare_server",
                             "--port", str(port), "--loop", loop], env, port,
                      workdir / f"{name}.log")

    bare = bare_server("bare", env.get("INVOICE_EVENT_LOOP", DEFAULT_LOOP))
    servers = [bare, no_auth, embedded]
    if args.uvloop:
        servers = [bare, bare_server("bare-uvloop", "uvloop"), embedded,
                   service_server("embedded-uvloop", {**env, "INVOICE_EVENT_LOOP": "uvloop"})]
    if args.workers:
        servers = [bare, embedded, *(service_server(f"workers-{n}", env, n)
                                     for n in args.workers if n > 1)]
    if args.es_only:
        servers = []
    if es_url is not None:
        es_port = free_port()
        es_server = Server("es", [*server_prefix, sys.executable, "-m", "bench.es_service",
                                  "--port", str(es_port), "--es-url", es_url,
                                  "--per-series", str(args.per_series), "--data-dir", str(data),
                                  *(["--real-es"] if real_es else [])],
                           {**env, ES_COUNTS_ENV: str(workdir / "es-counts.json")}, es_port,
                           workdir / "es.log")
        print("loading the demo data into Elasticsearch (first start of the es server) ...",
              flush=True)
        es_server.start(timeout=600)
        try:
            seen_es, _ = check_sample(es_port, lookups, token, args.check)
        finally:
            es_server.stop()
        print("  checked on Elasticsearch: "
              + ", ".join(f"{k} {n}" for k, n in seen_es.most_common()))
        ids_file = workdir / "es-ids.txt"
        ids_file.write_text("".join(f"{doc_id}\n" for doc_id in floor_ids(
            data / "invoices.sqlite3", lookups, args.seed)))
        floor_port = free_port()
        es_floor = Server("es-floor", [*server_prefix, sys.executable, "-m", "bench.es_floor",
                                       "--port", str(floor_port), "--es-url", es_url,
                                       "--ids-file", str(ids_file),
                                       *(["--real-es"] if real_es else [])],
                          {**env, ES_COUNTS_ENV: str(workdir / "es-floor-counts.json")},
                          floor_port, workdir / "es-floor.log")
        servers.extend([es_floor, es_server])
        if args.es_b_tree is not None:
            servers.append(es_b_server(args.es_b_tree, es_server, data, workdir))
    tokens = {"embedded": token, "es": token, "es-b": token, "embedded-uvloop": token,
              **{server.name: token for server in servers if server.name.startswith("workers-")}}
    if args.replica:
        replica_servers, tokens["replica"] = prepare_replica(args, service, env, server_prefix,
                                                            workdir, lookups)
        tokens["replica-miss"] = tokens["replica-built"] = tokens["replica"]
        servers.extend(replica_servers)

    if not args.es_only:
        check_embedded(no_auth, embedded, bare, lookups, token, args.check)
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, warm-up "
          f"{args.warmup:g}s per start, {args.rounds} round(s)"
          f"{', pinned' if args.pin else ''}", flush=True)
    results: dict[str, list[WrkResult]] = {server.name: [] for server in servers}
    es_requests: dict[str, list[list[tuple[str, float]]]] = {}
    reuse_shares: dict[str, list[float]] = {}
    for round_no in range(1, args.rounds + 1):
        for server in servers:
            key = tokens.get(server.name)
            with running(server):
                if args.warmup > 0:
                    run_wrk(wrk, server, args, args.warmup, paths.get(server.name, paths_file),
                            key)
                reuse_before = reuse_counts(server.port)
                counts_file = Path(server.env.get(ES_COUNTS_ENV, os.devnull))
                time.sleep(0.6 if ES_COUNTS_ENV in server.env else 0)  # the file's next write
                counted = read_counts(counts_file)
                result = run_wrk(wrk, server, args, args.duration,
                                 paths.get(server.name, paths_file), key)
                if ES_COUNTS_ENV in server.env:
                    time.sleep(0.6)
                    es_requests.setdefault(server.name, []).append(
                        per_lookup(counted, read_counts(counts_file), result.requests))
                share = reused_share(reuse_before, reuse_counts(server.port))
                if share is not None:
                    reuse_shares.setdefault(server.name, []).append(share)
            results[server.name].append(result)
            print(f"  round {round_no} {server.name:<12} {result.rps:8.0f} req/s  "
                  f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                  f"server cpu {result.server_cpu:4.0%}  wrk cpu {result.wrk_cpu:4.0%}",
                  flush=True)
    for server in servers:
        warnings = [ln for ln in server.log_tail(200).splitlines()
                    if '"level": "error"' in ln or "Traceback" in ln]
        for line in warnings[:5]:
            print(f"  ! {server.name} log: {line[:300]}")
    ratio = report(results)
    report_es_requests(es_requests)
    report_reuse(reuse_shares)
    return ratio


_REUSE_SERIES = "invoice_lookup_answers_total{how="


def reuse_counts(port: int) -> tuple[float, float] | None:
    """The service's lookup answers so far, (reused, built), from its /metrics (None: not
    our service, or none counted: the bare handler, the Elasticsearch floor)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    found = {line.split('"')[1]: float(line.rsplit(" ", 1)[1])
             for line in text.splitlines() if line.startswith(_REUSE_SERIES)}
    return (found.get("reused", 0.0), found.get("built", 0.0)) if found else None


def reused_share(before: tuple[float, float] | None,
                 after: tuple[float, float] | None) -> float | None:
    """The share of the measured run's answers that were reused (verify/lookup/reuse.py)."""
    if after is None:
        return None
    reused, built = (a - b for a, b in zip(after, before or (0.0, 0.0), strict=True))
    return reused / (reused + built) if reused + built else None


def report_reuse(shares: dict[str, list[float]]) -> None:
    """Per server and round, the share of the measured answers that were reused rather than
    built: the figures above are for this mix."""
    for name, per_round in shares.items():
        print(f"  {name}: answers reused {' '.join(f'{s:.1%}' for s in per_round)} "
              f"(per round; median {statistics.median(per_round):.1%})")


def report_es_requests(counted: dict[str, list[list[tuple[str, float]]]]) -> None:
    """Requests sent to Elasticsearch per lookup answered, by endpoint, per round (the
    shared state's background requests of the same moments included)."""
    for name, rounds in counted.items():
        totals = " ".join(f"{sum(v for _, v in r):.3f}" for r in rounds)
        print(f"  {name}: Elasticsearch requests per lookup {totals} (per round); by endpoint:")
        names = sorted({k for r in rounds for k, _ in r},
                       key=lambda k: -max(dict(r).get(k, 0.0) for r in rounds))
        for endpoint in names:
            per = " ".join(f"{dict(r).get(endpoint, 0.0):.4f}" for r in rounds)
            print(f"    {endpoint:<48} {per}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    command = shlex.join([os.path.relpath(sys.executable, REPO), "-m", "bench.lookup",
                          *(sys.argv[1:] if argv is None else argv)])
    print(f"reproduce: cd {shlex.quote(str(REPO))} && {command}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    osmem = None
    es_url = os.environ.get("INVOICE_ES_URL") if args.es else None
    if args.es and es_url is None:
        osmem = OsmemServer.start(japanese=False)
        es_url = osmem.url
    try:
        ratio = bench(args, workdir, es_url, real_es=args.es and osmem is None)
    except SetupError as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if osmem is not None:
            osmem.close()
            if osmem.process.stdout is not None:
                osmem.process.stdout.close()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"reproduce: cd {shlex.quote(str(REPO))} && {command}")
    if args.expect_ratio is not None and ratio < args.expect_ratio:
        print(f"ratio {ratio:.2f} is below --expect-ratio {args.expect_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
