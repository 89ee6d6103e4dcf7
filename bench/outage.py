"""Outage figures of the embedded default (SQLite primary, in-memory replica): what is served
while the primary is down, how long until the first degraded answer, how fast the reconciler
catches up afterwards.

All on 127.0.0.1, with the real service process (`invoice-verify serve`) on copies of one
temporary data directory holding the demo data, a fresh copy for every measurement. Each
round measures:

1. **Served during a declared maintenance window** of the primary: `wrk` (bench/outage.lua,
   which tallies every answer by HTTP code, status, source and degraded flag) over lookups
   of invoices the replica holds (posted through this service, so written through to its
   in-memory replica), first healthy, then in maintenance; then over lookups the replica does
   not hold (every key form of the demo data, found and unknown in the primary).
2. **Time from failure to the first degraded answer** on the detected path: a real fault of
   the SQLite file held by another process (bench/sqlite_fault.py: `write-lock`, a held
   `BEGIN EXCLUSIVE`; `wal-lock`, the WAL-index locks a process in WAL recovery holds) while
   one client looks up a replica-held invoice in a loop and another posts packages; then the
   fault is lifted and the time to the next primary answer is measured.
3. **Reconcile throughput** (bench/outage_backlog.py): journal entries queued (202) and gaps
   recorded during a maintenance window, drained after it by `Reconciler.run()` in this
   process, against store-only baselines on copies of the same data.

Run from the repository root: `.venv/bin/python -m bench.outage` (`--help` for the knobs).
Exit status: 0 after a measurement, 2 when the setup fails. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bench import outage_backlog as backlog_mod
from bench.lookup import (
    LOOKUP,
    REPO,
    Server,
    SetupError,
    _service_command,
    _terminate,
    build_lookups,
    ensure_wrk,
    fetch,
    free_port,
    machine_info,
    run_checked,
    running,
    service_env,
)
from bench.sqlite_fault import FAULTS
from tests.factories import authority_code, package, vn_invoice, vn_key
from verify.settings import FallbackSettings

LUA = Path(__file__).resolve().parent / "outage.lua"
RECONCILE_BATCH = FallbackSettings().reconcile_batch_entries
HELD_PER_PACKAGE = 100
#: Gaps opened during a detected fault (lookups the replica cannot answer), for the heal
#: figure: every one resolved and the journal drained.
GAPS_IN_FAULT = 20
#: The service's own background reconciler stays idle (the bench runs the reconciler
#: itself, timed); gaps resolve `missing` at once instead of after 24 hours.
# The replica is not warmed at start: the lookups "the replica does not hold" and the
# backlog's found gaps stand for invoices that reached the primary past this process.
QUIET = {"INVOICE_RECONCILE_INTERVAL_SECONDS": "3600", "INVOICE_GAP_GRACE_HOURS": "0",
         "INVOICE_REPLICA_WARM_UP": "0"}


# --------------------------------------------------------------------------- helpers


def _vn_path(number: int, **extra: str) -> str:
    params = {k: str(v) for k, v in vn_key(number).items()} | extra
    return f"{LOOKUP}?{urlencode(params)}"


def held_paths(count: int, seed: int) -> list[str]:
    """Lookups of invoices 1..count of the seller of docs/intake.md#post-a-package, in every
    form a replica answers: key, key + right total (valid), key + wrong total (mismatch),
    authority code."""
    paths = []
    for n in range(1, count + 1):
        paths += [_vn_path(n), _vn_path(n, total_amount="1100000"),
                  _vn_path(n, total_amount="1100001"),
                  f"{LOOKUP}?{urlencode({'authority_code': authority_code(n)})}"]
    random.Random(seed).shuffle(paths)
    return paths


def held_packages(first: int, count: int, prefix: str) -> list[bytes]:
    out = []
    for start in range(first, first + count, HELD_PER_PACKAGE):
        numbers = range(start, min(start + HELD_PER_PACKAGE, first + count))
        out.append(json.dumps(package([vn_invoice(n) for n in numbers],
                                      package_id=f"{prefix}-{start:07d}")).encode())
    return out


def post_all(port: int, token: str, bodies: list[bytes]) -> Counter[str]:
    """POST each package; '<http code> <result>' counts."""
    async def go() -> Counter[str]:
        seen: Counter[str] = Counter()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                         timeout=aiohttp.ClientTimeout(total=120)) as s:
            for body in bodies:
                async with s.post(f"http://127.0.0.1:{port}/api/v1/packages", data=body,
                                  headers={"Content-Type": "application/json"}) as resp:
                    answer = await resp.json(content_type=None)
                    seen[f"{resp.status} {answer.get('result', '-')}"] += 1
        return seen

    return asyncio.run(go())


def declare(port: int, token: str, hours: float) -> float:
    """A maintenance window of the primary from a minute ago; seconds the POST took."""
    now = datetime.now(UTC)
    body = json.dumps({"system": "primary", "start": (now - timedelta(minutes=1)).isoformat(),
                       "end": (now + timedelta(hours=hours)).isoformat(),
                       "reason": "bench: outage"}).encode()
    started = time.perf_counter()
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
         "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
         "--data-binary", "@-", f"http://127.0.0.1:{port}/api/v1/outages"],
        input=body, capture_output=True, check=False, timeout=30)
    took = time.perf_counter() - started
    if done.stdout.decode().strip() != "201":
        raise SetupError(f"declaring maintenance answered {done.stdout!r} {done.stderr!r}")
    return took


def answer_key(code: int, body: Any) -> str:
    if not isinstance(body, dict):
        return f"{code} - - -"
    degraded = body.get("degraded")
    flag = "-" if degraded is None else str(degraded).lower()
    return f"{code} {body.get('status', '-')} {body.get('source', '-')} {flag}"


def metrics(port: int) -> dict[str, float]:
    """The primary's breaker counters from /metrics (no key needed)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for name in ("failures", "opened"):
        match = re.search(rf'invoice_breaker_{name}_total{{system="primary"}} (\S+)', text)
        out[name] = float(match.group(1)) if match else 0.0
    match = re.search(r'invoice_probe_failures_total{system="primary"} (\S+)', text)
    out["probe_failures"] = float(match.group(1)) if match else 0.0
    return out


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True, slots=True)
class WrkRun:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    socket_errors: int
    tally: dict[str, int]
    #: the server's CPU seconds (all its threads) during the run, when measured
    cpu_s: float = 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, in microseconds."""
        return self.cpu_s / max(self.requests, 1) * 1e6

    @property
    def non_2xx(self) -> int:
        return sum(n for key, n in self.tally.items() if not key.startswith("2"))

    def share(self, predicate: str) -> int:
        return sum(n for key, n in self.tally.items() if predicate in key)


def run_wrk(wrk: str, port: int, args: argparse.Namespace, duration: float, paths: Path,
            token: str) -> WrkRun:
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration:g}s",
           "--timeout", "5s", "-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(paths)]
    done = subprocess.run(cmd, env={**os.environ, "BENCH_TOKEN": token}, capture_output=True,
                          text=True, check=False, timeout=duration + 60)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not lines:
        raise SetupError(f"wrk failed (exit {done.returncode}): {shlex.join(cmd)}\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    raw = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    return WrkRun(rps=raw["requests"] / (raw["duration_us"] / 1e6), requests=raw["requests"],
                  p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
                  socket_errors=sum(int(raw[k]) for k in ("connect", "read", "write",
                                                          "timeout")),
                  tally=dict(raw["tally"]))


def measured(server: Server, wrk: str, args: argparse.Namespace, paths: Path,
             token: str) -> WrkRun:
    """`run_wrk` for `--duration` on `server`, with the server's CPU during it."""
    before = server.cpu_seconds()
    run = run_wrk(wrk, server.port, args, args.duration, paths, token)
    return dataclasses.replace(run, cpu_s=server.cpu_seconds() - before)


def _tally(run: WrkRun) -> str:
    return ", ".join(f"{key} x{n}" for key, n in sorted(run.tally.items(),
                                                          key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- phases


@dataclass
class Context:
    args: argparse.Namespace
    wrk: str
    service: list[str]
    env: dict[str, str]
    workdir: Path
    template: Path
    token: str
    held: Path  # paths file: replica-held lookups
    not_held: Path  # paths file: lookups the replica does not hold
    template_invoices: int
    #: lookups of invoices the primary holds and the replica does not: asked during a
    #: detected outage, each opens a gap the reconciler resolves `found` after it
    gap_paths: list[str] = field(default_factory=list)

    def server(self, name: str, data: Path, extra_env: dict[str, str] | None = None) -> Server:
        port = free_port()
        return Server(name, [*self.service, "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--data-dir", str(data)],
                      {**self.env, **(extra_env or {})}, port, self.workdir / f"{name}.log")

    def fresh(self, name: str) -> Path:
        target = self.workdir / name
        shutil.rmtree(target, ignore_errors=True)
        return backlog_mod.copy_dir(self.template, target)


@dataclass
class Served:
    healthy: WrkRun
    held: WrkRun
    not_held: WrkRun
    declare_to_degraded_ms: float
    #: the bare aiohttp handler (bench/bare_server.py) of the same round, same URLs and wrk
    bare: WrkRun

    @property
    def hits_ratio(self) -> float:
        return self.held.rps / self.bare.rps

    @property
    def misses_ratio(self) -> float:
        return self.not_held.rps / self.bare.rps


def bare_run(ctx: Context, round_no: int) -> WrkRun:
    """The bare aiohttp handler, alone, over the URLs the misses use (its answer is a
    constant; the paths only shape the requests)."""
    port = free_port()
    bare = Server(f"r{round_no}-bare", [sys.executable, "-m", "bench.bare_server", "--port",
                                         str(port)], ctx.env, port,
                  ctx.workdir / f"r{round_no}-bare.log")
    with running(bare):
        if ctx.args.warmup > 0:
            run_wrk(ctx.wrk, port, ctx.args, ctx.args.warmup, ctx.not_held, ctx.token)
        return measured(bare, ctx.wrk, ctx.args, ctx.not_held, ctx.token)


def served_during_maintenance(ctx: Context, round_no: int) -> Served:
    args = ctx.args
    bare = bare_run(ctx, round_no)
    data = ctx.fresh(f"r{round_no}-served")
    server = ctx.server(f"r{round_no}-served", data)
    with running(server):
        posted = post_all(server.port, ctx.token, held_packages(1, args.held, "HELD"))
        if set(posted) != {"200 accepted"}:
            raise SetupError(f"posting the replica-held invoices answered {dict(posted)}")
        code, body = fetch(f"http://127.0.0.1:{server.port}{_vn_path(1)}", ctx.token)
        if answer_key(code, body) != "200 valid primary false":
            raise SetupError(f"a held invoice answered {code} {body!r} before the outage")
        if args.warmup > 0:
            run_wrk(ctx.wrk, server.port, args, args.warmup, ctx.held, ctx.token)
        healthy = measured(server, ctx.wrk, args, ctx.held, ctx.token)
        declare(server.port, ctx.token, hours=2)
        started = time.perf_counter()
        code, body = fetch(f"http://127.0.0.1:{server.port}{_vn_path(2)}", ctx.token)
        first = (time.perf_counter() - started) * 1000
        if answer_key(code, body) != "200 valid replica true":
            raise SetupError(f"a held invoice answered {code} {body!r} in maintenance")
        held = measured(server, ctx.wrk, args, ctx.held, ctx.token)
        not_held = measured(server, ctx.wrk, args, ctx.not_held, ctx.token)
    return Served(healthy, held, not_held, first, bare)


@dataclass
class Detected:
    fault: str
    first_degraded: float | None  # seconds from the fault in force to a degraded answer
    lookups: list[tuple[float, float, str]] = field(default_factory=list)  # at, took, answer
    intake: list[tuple[float, float, str]] = field(default_factory=list)
    recovered: float | None = None  # seconds from lifting the fault to a primary answer
    breaker: dict[str, float] = field(default_factory=dict)
    #: Healing after the fault is lifted (`_healed`): seconds to the breaker closing, from
    #: the close to the reconciler's run starting, and to the journal drained.
    healed: dict[str, float] = field(default_factory=dict)
    #: answers to the lookups the replica cannot answer, asked once the outage was detected
    gaps: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        def counts(rows: list[tuple[float, float, str]]) -> str:
            seen = Counter(answer for _, _, answer in rows)
            slow = max((took for _, took, _ in rows), default=0.0)
            return (", ".join(f"{k} x{n}" for k, n in seen.most_common()) or "none") + \
                f" (slowest {slow:.1f} s)"
        first = ("none" if self.first_degraded is None
                 else f"{self.first_degraded:.2f} s")
        recovered = "-" if self.recovered is None else f"{self.recovered:.2f} s"
        return (f"first degraded answer: {first}; lookups: {counts(self.lookups)}; "
                f"intake: {counts(self.intake)}; primary breaker failures "
                f"{self.breaker.get('failures', 0):.0f}, opened "
                f"{self.breaker.get('opened', 0):.0f}, probe failures "
                f"{self.breaker.get('probe_failures', 0):.0f}; primary answers again "
                f"{recovered} after the fault is lifted; gaps opened during the fault: "
                f"{dict(self.gaps) or 'none'}; {_heal_text(self.healed)}")


def _heal_text(healed: dict[str, float]) -> str:
    if not healed:
        return "healing not measured"
    parts = [f"breaker closed {healed['closed']:.1f} s after the lift" if "closed" in healed
             else "breaker close not seen",
             ("no reconcile run seen" if "reconcile_after_close" not in healed else
              f"reconciler started {healed['reconcile_after_close']:.2f} s after the close"
              if healed["reconcile_after_close"] >= 0 else
              f"the run that drained it began {-healed['reconcile_after_close']:.1f} s before "
              "the close (started during the fault, it waited on the file)"),
             f"journal drained ({healed.get('queued', 0):.0f} applied) and every gap "
             f"resolved {healed['drained']:.1f} s after the lift"
             + (f", {healed['drained'] - healed['closed']:.1f} s after the breaker closed "
                "(the heal figure)" if "closed" in healed else "")
             if "drained" in healed else "journal not drained or gaps still open"]
    return "; ".join(parts)


async def _probe(port: int, token: str, limit: float, t0: float,
                 result: Detected, number: int) -> None:
    """Look up a held invoice in a loop (one at a time) and post packages in a loop, until
    a degraded answer or `limit` seconds after `t0`."""
    base = f"http://127.0.0.1:{port}"
    timeout = aiohttp.ClientTimeout(total=limit + 30)
    stop = asyncio.Event()

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                     timeout=timeout) as session:
        async def lookups() -> None:
            while not stop.is_set() and time.perf_counter() - t0 < limit:
                sent = time.perf_counter()
                try:
                    async with session.get(f"{base}{_vn_path(number)}") as resp:
                        key = answer_key(resp.status, await resp.json(content_type=None))
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    key = f"client error {type(exc).__name__}"
                now = time.perf_counter()
                result.lookups.append((now - t0, now - sent, key))
                if key.endswith(" true") and result.first_degraded is None:
                    result.first_degraded = now - t0
                    stop.set()
                await asyncio.sleep(0.05)

        async def intake() -> None:
            n = 0
            while not stop.is_set() and time.perf_counter() - t0 < limit:
                n += 1
                body = held_packages(5000 + 10 * n, 2, f"FAULT-{n}")[0]
                sent = time.perf_counter()
                try:
                    async with session.post(f"{base}/api/v1/packages", data=body, headers={
                            "Content-Type": "application/json"}) as resp:
                        answer = await resp.json(content_type=None)
                        key = f"{resp.status} {answer.get('result', '-')}"
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    key = f"client error {type(exc).__name__}"
                now = time.perf_counter()
                result.intake.append((now - t0, now - sent, key))
                await asyncio.sleep(0.5)

        await asyncio.gather(lookups(), intake())


def _open_gaps(port: int, token: str, paths: list[str]) -> Counter[str]:
    """Look up invoices the replica does not hold while the primary is down: each answer
    `unconfirmed` opens a gap (tallied by '<code> <status> <has gap_id>')."""
    seen: Counter[str] = Counter()
    for path in paths:
        code, body = fetch(f"http://127.0.0.1:{port}{path}", token)
        gap = isinstance(body, dict) and bool(body.get("gap_id"))
        seen[f"{code} {body.get('status', '-') if isinstance(body, dict) else '-'} "
             f"{'gap' if gap else 'no-gap'}"] += 1
    return seen


def _stamp(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def _healed(port: int, token: str, lifted_at: float, limit: float) -> dict[str, float]:
    """After the fault is lifted (`lifted_at`, Unix time): when the primary's detected
    window ended (the breaker closed), when the reconcile run after it started, and when the
    journal was drained with no gap open, all from the service's own records."""
    base = f"http://127.0.0.1:{port}/api/v1"
    healed: dict[str, float] = {}
    started = time.perf_counter()
    status: dict[str, Any] = {}
    while time.perf_counter() - started < limit:
        code, status = fetch(f"{base}/reconcile/status", token)
        if code == 200 and not status["running"] and status["journal"]["pending"] == 0 \
                and status["open_gaps"] == 0 and status["run"]["runs"] > 0:
            healed["drained"] = time.time() - lifted_at
            break
        time.sleep(0.05)
    code, listed = fetch(f"{base}/outages?system=primary", token)
    ends = [_stamp(w["end"]) for w in (listed.get("outages", []) if code == 200 else [])
            if w["kind"] == "detected" and w["end"]]
    closed = max((end for end in ends if end is not None), default=None)
    run_start = _stamp((status.get("run") or {}).get("started_at"))
    if closed is not None:
        healed["closed"] = closed - lifted_at
        if run_start is not None:  # negative: the last run began before the close
            healed["reconcile_after_close"] = run_start - closed
    healed["queued"] = float((status.get("run") or {}).get("journal_applied", 0))
    healed["runs"] = float((status.get("run") or {}).get("runs", 0))
    return healed


def _recovered(port: int, token: str, limit: float) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        code, body = fetch(f"http://127.0.0.1:{port}{_vn_path(1)}", token)
        if answer_key(code, body).startswith("200 valid primary"):
            return time.perf_counter() - started
        time.sleep(0.05)
    return None


def detected_failure(ctx: Context, round_no: int, fault: str) -> Detected:
    args = ctx.args
    data = ctx.fresh(f"r{round_no}-{fault}")
    server = ctx.server(f"r{round_no}-{fault}", data)
    result = Detected(fault, None)
    with running(server):
        posted = post_all(server.port, ctx.token, held_packages(1, 20, "HELD"))
        code, body = fetch(f"http://127.0.0.1:{server.port}{_vn_path(3)}", ctx.token)
        if set(posted) != {"200 accepted"} or answer_key(code, body) != \
                "200 valid primary false":
            raise SetupError(f"before the {fault} fault: intake {dict(posted)}, lookup "
                             f"{code} {body!r}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sqlite_fault", fault,
             str(data / "invoices.sqlite3"), str(args.detect_timeout + 60)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            t0 = time.perf_counter()
            if line != "held":
                raise SetupError(f"the {fault} fault did not take hold: {line!r} "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
            asyncio.run(_probe(server.port, ctx.token, args.detect_timeout, t0, result, 2))
            if result.first_degraded is not None:
                result.gaps = _open_gaps(server.port, ctx.token, ctx.gap_paths)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            lifted_at = time.time()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        result.recovered = _recovered(server.port, ctx.token, 60)
        result.healed = _healed(server.port, ctx.token, lifted_at, 120)
        result.breaker = metrics(server.port)
    return result


@dataclass
class Reconciled:
    built: backlog_mod.Built
    drained: backlog_mod.Drained
    one_by_one: tuple[float, int]
    batched: tuple[float, int]
    reads: tuple[float, int]
    gaps: int

    @property
    def entries_per_s(self) -> float:
        return int(self.drained.progress["journal_applied"]) / self.drained.journal_seconds

    @property
    def gaps_per_s(self) -> float:
        return int(self.drained.progress["gaps_checked"]) / self.drained.gaps_seconds


def reconcile_round(ctx: Context, round_no: int, backlog: backlog_mod.Backlog) -> Reconciled:
    args = ctx.args
    data = ctx.fresh(f"r{round_no}-reconcile")
    server = ctx.server(f"r{round_no}-reconcile", data, QUIET)
    with running(server):
        built = asyncio.run(backlog_mod.build(server.port, ctx.token, backlog, concurrency=4))
    waited = backlog_mod.wait_window_end(built)
    print(f"    backlog: {len(backlog.bodies)} packages in {built.intake_seconds:.1f} s "
          f"({dict(built.intake)}), {len(backlog.gap_paths)} lookups in "
          f"{built.lookup_seconds:.1f} s ({dict(built.lookups)}); {built.windows} windows "
          f"declared, waited {waited:.1f} s for the last to end", flush=True)
    expected = {"202 queued": len(backlog.bodies)}
    if dict(built.intake) != expected:
        print(f"  ! expected every package queued (202): {dict(built.intake)}")
    if round_no == 1 and args.save_backlog is not None:
        backlog_mod.copy_dir(data, args.save_backlog)
        print(f"    saved the backlog in {args.save_backlog}")
    one = backlog_mod.copy_dir(data, ctx.workdir / f"r{round_no}-base-ingest")
    many = backlog_mod.copy_dir(data, ctx.workdir / f"r{round_no}-base-batch")
    gaps = asyncio.run(backlog_mod.open_gaps(one))
    drained: backlog_mod.Drained | None = None
    one_by_one = batched = (0.0, 0)
    # Alternate the order between rounds: neither side always runs on a colder machine.
    for step in (("drain", "ingest", "ingest_many") if round_no % 2
                 else ("ingest_many", "ingest", "drain")):
        if step == "drain":
            drained = asyncio.run(backlog_mod.drain(data))
        elif step == "ingest":
            one_by_one = asyncio.run(backlog_mod.direct_ingest(one, backlog.bodies, batch=None))
        else:
            batched = asyncio.run(backlog_mod.direct_ingest(many, backlog.bodies,
                                                            batch=args.batch))
    assert drained is not None
    reads = asyncio.run(backlog_mod.store_reads(data, gaps))
    for path in (one, many):
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    return Reconciled(built, drained, one_by_one, batched, reads, len(gaps))


# --------------------------------------------------------------------------- report


def _med(values: Sequence[float]) -> float:
    return statistics.median(values)


def _rounds(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    return " ".join(fmt.format(v) for v in values)


def print_served(s: Served, prefix: str) -> None:
    ratio = s.held.rps / s.healthy.rps
    print(f"{prefix}bare aiohttp handler: {s.bare.rps:,.0f} req/s (p99 {s.bare.p99_ms:.1f} ms);"
          f" degraded capacity: hits {s.held.rps:,.0f} req/s = {s.hits_ratio:.2f} of bare "
          f"(p99 {s.held.p99_ms:.1f} ms), misses {s.not_held.rps:,.0f} req/s = "
          f"{s.misses_ratio:.2f} of bare (p99 {s.not_held.p99_ms:.1f} ms); server CPU per "
          f"request: bare {s.bare.cpu_us:.0f} us, hits {s.held.cpu_us:.0f} us, misses "
          f"{s.not_held.cpu_us:.0f} us")
    print(f"{prefix}replica-held keys: healthy {s.healthy.rps:,.0f} req/s (p99 "
          f"{s.healthy.p99_ms:.1f} ms); in maintenance {s.held.rps:,.0f} req/s ({ratio:.2f} "
          f"of healthy, p99 {s.held.p99_ms:.1f} ms): {s.held.requests} requests served, "
          f"non-2xx {s.held.non_2xx}, socket errors {s.held.socket_errors}")
    print(f"{prefix}  answers (code status source degraded): {_tally(s.held)}")
    print(f"{prefix}keys the replica does not hold: {s.not_held.rps:,.0f} req/s, "
          f"{s.not_held.requests} requests, non-2xx {s.not_held.non_2xx}, socket errors "
          f"{s.not_held.socket_errors}")
    print(f"{prefix}  answers: {_tally(s.not_held)}")
    print(f"{prefix}declared window: the first lookup after the declaration was accepted "
          f"answered degraded in {s.declare_to_degraded_ms:.1f} ms")


def print_reconciled(rec: Reconciled, backlog: backlog_mod.Backlog, batch: int,
                     prefix: str) -> None:
    p = rec.drained.progress
    entries = len(backlog.bodies)
    one_s, one_n = rec.one_by_one
    many_s, many_n = rec.batched
    reads_s, reads_found = rec.reads
    print(f"{prefix}drain: {p['journal_applied']}/{p['journal_total']} entries in "
          f"{rec.drained.journal_seconds:.2f} s = {rec.entries_per_s:,.0f} entries/s, "
          f"{backlog.invoices / rec.drained.journal_seconds:,.0f} invoices/s; gap re-check: "
          f"{p['gaps_checked']}/{p['gaps_total']} in {rec.drained.gaps_seconds:.2f} s = "
          f"{rec.gaps_per_s:,.0f} gaps/s (found {p['gaps_found']}, missing "
          f"{p['gaps_missing']}, waiting {p['gaps_waiting']}); run {p['seconds']} s, files "
          f"opened in {rec.drained.open_seconds:.2f} s; primary holds "
          f"{rec.drained.invoices_after} invoices, journal {rec.drained.journal_counts}"
          f"{'; STOPPED: ' + str(p['stopped_by']) if p['stopped_by'] else ''}")
    print(f"{prefix}baselines: Intake.ingest one by one {entries / one_s:,.0f} packages/s "
          f"({one_n / one_s:,.0f} invoices/s); Intake.ingest_many x{batch} "
          f"{entries / many_s:,.0f} packages/s ({many_n / many_s:,.0f} invoices/s); store "
          f"reads of the {rec.gaps} gap keys {rec.gaps / reads_s:,.0f} keys/s "
          f"({reads_found} found)")
    print(f"{prefix}ratios: drain / ingest one by one {rec.entries_per_s * one_s / entries:.2f}"
          f", drain / ingest_many {rec.entries_per_s * many_s / entries:.2f}, gap re-check / "
          f"store reads {rec.gaps_per_s * reads_s / rec.gaps:.2f}")


def summary(ctx: Context, served: list[Served], detected: list[Detected],
            reconciled: list[Reconciled], backlog: backlog_mod.Backlog | None) -> None:
    args = ctx.args
    print(f"\nsummary over {args.rounds} round(s) (median, then per round):")
    if served:
        held = [s.held.rps for s in served]
        print(f"  served in maintenance, replica-held keys: {_med(held):,.0f} req/s "
              f"[{_rounds(held)}]; ratio to healthy "
              f"{_med([s.held.rps / s.healthy.rps for s in served]):.2f} "
              f"[{_rounds([s.held.rps / s.healthy.rps for s in served], '{:.2f}')}]; "
              f"requests {sum(s.held.requests for s in served)}, non-2xx "
              f"{sum(s.held.non_2xx for s in served)} (target 0), degraded answers "
              f"{sum(s.held.share(' replica true') for s in served)}")
        other = [s.not_held.rps for s in served]
        print(f"  served in maintenance, keys the replica does not hold: {_med(other):,.0f} "
              f"req/s [{_rounds(other)}]; requests {sum(s.not_held.requests for s in served)}"
              f", non-2xx {sum(s.not_held.non_2xx for s in served)}, unconfirmed "
              f"{sum(s.not_held.share(' unconfirmed ') for s in served)}")
        bare = [s.bare.rps for s in served]
        hits = [s.hits_ratio for s in served]
        misses = [s.misses_ratio for s in served]
        p99 = {name: [getattr(s, name).p99_ms for s in served]
               for name in ("bare", "held", "not_held")}
        print(f"  degraded capacity (ratio to the bare aiohttp handler of the same round, "
              f"{_med(bare):,.0f} req/s [{_rounds(bare)}]): hits {_med(hits):.2f} "
              f"[{_rounds(hits, '{:.2f}')}], misses {_med(misses):.2f} "
              f"[{_rounds(misses, '{:.2f}')}] (goal 0.30)")
        print(f"  p99 ms: bare {_med(p99['bare']):.1f} [{_rounds(p99['bare'], '{:.1f}')}], "
              f"hits {_med(p99['held']):.1f} [{_rounds(p99['held'], '{:.1f}')}], misses "
              f"{_med(p99['not_held']):.1f} [{_rounds(p99['not_held'], '{:.1f}')}]")
        cpu = {name: [getattr(s, name).cpu_us for s in served]
               for name in ("bare", "held", "not_held")}
        cpu_ratio = {name: [b / v for b, v in zip(cpu["bare"], cpu[name], strict=True)]
                     for name in ("held", "not_held")}
        print(f"  server CPU per request, us: bare {_med(cpu['bare']):.0f} "
              f"[{_rounds(cpu['bare'])}], hits {_med(cpu['held']):.0f} "
              f"[{_rounds(cpu['held'])}], misses {_med(cpu['not_held']):.0f} "
              f"[{_rounds(cpu['not_held'])}]; bare's / the path's (the ratio if CPU were "
              f"all that bounds it): hits {_med(cpu_ratio['held']):.2f} "
              f"[{_rounds(cpu_ratio['held'], '{:.2f}')}], misses "
              f"{_med(cpu_ratio['not_held']):.2f} [{_rounds(cpu_ratio['not_held'], '{:.2f}')}]")
        print(f"  declared window to first degraded answer: "
              f"{_med([s.declare_to_degraded_ms for s in served]):.1f} ms "
              f"[{_rounds([s.declare_to_degraded_ms for s in served], '{:.1f}')}]")
    for fault in args.faults:
        runs = [d for d in detected if d.fault == fault]
        if not runs:
            continue
        firsts = [d.first_degraded for d in runs]
        got = [f for f in firsts if f is not None]
        shown = " ".join("none" if f is None else f"{f:.2f}" for f in firsts)
        median = f"{_med(got):.2f} s" if len(got) == len(firsts) else \
            f"no degraded answer within {args.detect_timeout:g} s in {len(firsts) - len(got)}" \
            f" of {len(firsts)} repetitions"
        print(f"  detected failure ({fault}): time to first degraded answer {median} "
              f"[{shown}]; lookups during the fault: "
              f"{dict(sum((Counter(a for *_, a in d.lookups) for d in runs), Counter()))}; "
              f"intake: {dict(sum((Counter(a for *_, a in d.intake) for d in runs), Counter()))}")
        healed = [d.healed for d in runs if "drained" in d.healed and "closed" in d.healed]
        if healed:
            heal = [h["drained"] - h["closed"] for h in healed]
            lift = [h["drained"] for h in healed]
            print(f"  heal ({fault}): journal drained and every gap resolved "
                  f"{_med(heal):.1f} s after the breaker closed [{_rounds(heal, '{:.1f}')}], "
                  f"{_med(lift):.1f} s after the fault was lifted [{_rounds(lift, '{:.1f}')}]; "
                  f"gaps opened during the fault "
                  f"{dict(sum((d.gaps for d in runs), Counter()))}")
    if reconciled and backlog is not None:
        entries = [r.entries_per_s for r in reconciled]
        invoices = [backlog.invoices / r.drained.journal_seconds for r in reconciled]
        gaps = [r.gaps_per_s for r in reconciled]
        one = [len(backlog.bodies) / r.one_by_one[0] for r in reconciled]
        many = [len(backlog.bodies) / r.batched[0] for r in reconciled]
        reads = [r.gaps / r.reads[0] for r in reconciled]
        print(f"  reconcile, journal: {_med(entries):,.0f} entries/s [{_rounds(entries)}], "
              f"{_med(invoices):,.0f} invoices/s [{_rounds(invoices)}] "
              f"({args.package_size} invoice(s) per entry; target 5,000 entries/s)")
        print(f"  reconcile, gaps: {_med(gaps):,.0f} gaps/s [{_rounds(gaps)}] "
              f"(target 5,000/s)")
        print(f"  baselines: Intake.ingest one by one {_med(one):,.0f} packages/s "
              f"[{_rounds(one)}]; Intake.ingest_many x{args.batch} {_med(many):,.0f} "
              f"packages/s [{_rounds(many)}]; store reads {_med(reads):,.0f} keys/s "
              f"[{_rounds(reads)}]")
        ratio = [e / o for e, o in zip(entries, one, strict=True)]
        ratio_many = [e / m for e, m in zip(entries, many, strict=True)]
        ratio_gaps = [g / r for g, r in zip(gaps, reads, strict=True)]
        print(f"  ratios: drain / ingest one by one {_med(ratio):.2f} "
              f"[{_rounds(ratio, '{:.2f}')}]; drain / ingest_many {_med(ratio_many):.2f} "
              f"[{_rounds(ratio_many, '{:.2f}')}]; gap re-check / store reads "
              f"{_med(ratio_gaps):.2f} [{_rounds(ratio_gaps, '{:.2f}')}]")


# --------------------------------------------------------------------------- main


PHASES = ("served", "detected", "reconcile")


def _csv(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return items
    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.outage", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of every phase")
    parser.add_argument("--phases", type=_csv(PHASES), default=list(PHASES),
                        help="comma-separated subset of " + ",".join(PHASES))
    parser.add_argument("--per-series", type=int, default=2500, help="demo invoices per series")
    parser.add_argument("--seed", type=int, default=1, help="seed of the lookup mixes")
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2, help="wrk warm-up seconds")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-c)")
    parser.add_argument("--held", type=int, default=1000,
                        help="invoices posted before the outage (replica-held); 4 URLs each")
    parser.add_argument("--urls", type=int, default=4000,
                        help="lookup URLs the replica does not hold (demo data, every form)")
    parser.add_argument("--faults", type=_csv(FAULTS), default=list(FAULTS),
                        help="detected-path faults of the SQLite file, comma-separated")
    parser.add_argument("--detect-timeout", type=float, default=30,
                        help="seconds to wait for a degraded answer after a fault")
    parser.add_argument("--packages", type=int, default=5000,
                        help="journal entries queued during maintenance")
    parser.add_argument("--package-size", type=int, default=1, help="invoices per package")
    parser.add_argument("--gaps", type=int, default=5000,
                        help="gaps recorded during maintenance (half found, half missing)")
    parser.add_argument("--batch", type=int, default=RECONCILE_BATCH,
                        help="packages per Intake.ingest_many call in the batched baseline "
                             f"(the reconciler's default batch is {RECONCILE_BATCH} entries; "
                             "the bench's reconciler uses the default)")
    parser.add_argument("--save-backlog", type=Path, default=None,
                        help="copy round 1's data directory, backlog built and not yet "
                             "drained, to this new directory (to profile the drain alone)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if min(args.rounds, args.packages, args.package_size, args.gaps, args.held,
           args.batch) < 1 or args.duration <= 0 or args.connections < args.threads:
        parser.error("counts must be >= 1, --duration > 0, --connections >= --threads")
    return args


def setup(args: argparse.Namespace, workdir: Path) -> Context:
    wrk = ensure_wrk()
    for line in machine_info(wrk):
        print(line)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                          capture_output=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "indexer", "fallback",
                            "verify"], cwd=REPO, text=True, capture_output=True,
                           check=False).stdout.strip()
    print(f"code: {head or 'unknown'}{' + uncommitted changes in the product' if dirty else ''}")
    service = _service_command()
    env = service_env()
    template = workdir / "template"
    started = time.monotonic()
    run_checked([*service, "demo", "--data-dir", str(template), "--per-series",
                 str(args.per_series)], "invoice-verify demo", env)
    token = run_checked([*service, "keys", "create", "--role", "admin", "--name", "bench",
                         "--data-dir", str(template)], "creating an API key",
                        env).strip().splitlines()[-1]
    db = template / "invoices.sqlite3"
    count = int(subprocess.run([sys.executable, "-c", (
        "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("
        "'select count(*) from invoices').fetchone()[0])"), str(db)],
        capture_output=True, text=True, check=True).stdout)
    held = workdir / "held.txt"
    held.write_text("".join(f"{p}\n" for p in held_paths(args.held, args.seed)))
    not_held = workdir / "not-held.txt"
    lookups = build_lookups(db, args.urls, args.seed)
    not_held.write_text("".join(f"{lk.path}\n" for lk in lookups))
    print(f"demo data: {count} invoices ({args.per_series} per series) in "
          f"{time.monotonic() - started:.1f} s; {args.held} replica-held invoices "
          f"({args.held * 4} URLs), {len(lookups)} URLs the replica does not hold "
          f"({sum(lk.expected == 'not_found' for lk in lookups)} unknown to the primary too)")
    gap_paths = [lk.path for lk in lookups if lk.expected == "valid"][:GAPS_IN_FAULT]
    return Context(args, wrk, service, env, workdir, template, token, held, not_held, count,
                   gap_paths)


def bench(args: argparse.Namespace, workdir: Path) -> None:
    ctx = setup(args, workdir)
    backlog = None
    if "reconcile" in args.phases:
        backlog = backlog_mod.make_backlog(ctx.template / "invoices.sqlite3", args.packages,
                                           args.package_size, args.gaps, args.seed)
    served: list[Served] = []
    detected: list[Detected] = []
    reconciled: list[Reconciled] = []
    for round_no in range(1, args.rounds + 1):
        print(f"round {round_no}:", flush=True)
        if "served" in args.phases:
            served.append(served_during_maintenance(ctx, round_no))
            print_served(served[-1], "  served: ")
        if "detected" in args.phases:
            for fault in args.faults:
                detected.append(detected_failure(ctx, round_no, fault))
                print(f"  detected ({fault}): {detected[-1].summary()}", flush=True)
        if backlog is not None:
            reconciled.append(reconcile_round(ctx, round_no, backlog))
            print_reconciled(reconciled[-1], backlog, args.batch, "  reconcile: ")
    summary(ctx, served, detected, reconciled, backlog)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    command = shlex.join([os.path.relpath(sys.executable, REPO), "-m", "bench.outage",
                          *(sys.argv[1:] if argv is None else argv)])
    print(f"reproduce: cd {shlex.quote(str(REPO))} && {command}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    try:
        bench(args, workdir)
    except SetupError as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"reproduce: cd {shlex.quote(str(REPO))} && {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
