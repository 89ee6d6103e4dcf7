"""Lookup latency and throughput while hostile uploads run (issue 15), against a quiet run.

Runs the real service (`invoice-verify serve`, embedded default, demo data) and drives it with
`wrk` over the lookup URLs of `bench/lookup.py`, once quiet and once while each hostile upload
is sent again and again from a second client (two of each in flight, back to back):

- `xlsx-bomb`: a 4.7 KB XLSX ledger whose sheet claims A1:XFD1048576, one row at r=1048576;
- `csv-16mib`: a 16 MiB CSV batch of 8 million one-cell rows;
- `big-png`: a 7071x7071 RGBA PNG with an EXIF rotation (873 KB, 200 MB decoded);
- `slow-clients`: 32 connections sending a photo's body one byte a second;
- `chunked-oversize`: a 60 MiB chunked multipart photo upload (limit 20 MiB);
- `all`: every one of them at once.

`--limits none` (the default, the goal's worst case): the uploads come from an admin key and
no key has a rate limit. `--limits budget`: from an audit key with the role's default budget
(its burst spent before each run: the steady state of a longer attack), wrk's key still
unlimited; those rows are labelled `[audit budget]`. `both` runs the two sets.

Each scenario restarts the server. Prints, per scenario, requests/s, p50 and p99 of the
lookups, p99 as a multiple of the same round's quiet p99 (median over rounds; the goal is at
most 2x), the server's peak RSS and CPU, the CPU of the hostile sender (this process: it
shares the machine with the server and wrk), the CPU everything else on the machine used
meanwhile (`others`: other work on a shared machine, interrupts), the uploads answered per
second and their answers. Then what each upload costs in CPU, sent one after another with no
lookups running (server and sender, and the bytes it moves over loopback; `deaf-oversize`: one
upload declaring a terabyte from a client that never reads its answer), and from those where
the CPU of each run went. Run from the repository root: `.venv/bin/python -m bench.hostile`
(`--help` for the knobs); `./run bench-hostile` too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import os
import resource
import shlex
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.lookup import (
    Lookup,
    Server,
    SetupError,
    WrkResult,
    _service_command,
    build_lookups,
    check_sample,
    ensure_wrk,
    free_port,
    machine_info,
    run_checked,
    run_wrk,
    running,
    service_env,
)
from tests.indexer.test_ledger_file import hostile_sheet
from tests.verify.test_uploads_hostile import rgba_png_with_rotation
from verify.settings import ROLE_KEY_BUDGETS

BUYER = "0314409058-002"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SCENARIOS = ("xlsx-bomb", "csv-16mib", "big-png", "slow-clients", "chunked-oversize", "all")
GOAL = 2.0  # p99 under hostile load / quiet p99


@dataclass
class Hostile:
    """What one kind of upload was answered (status or exception name -> count); with a
    `limit`, `stop` is set once that many were answered."""

    answers: Counter[str] = field(default_factory=Counter)
    limit: int | None = None
    stop: asyncio.Event | None = None

    def note(self, what: str) -> None:
        self.answers[what] += 1
        if self.limit is not None and self.stop is not None and self.total >= self.limit:
            self.stop.set()

    @property
    def total(self) -> int:
        return sum(self.answers.values())


def summary(answers: Counter[str]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in sorted(answers.items())) or "-"


Driver = Callable[[aiohttp.ClientSession, str, str, Hostile, asyncio.Event], Awaitable[None]]


def _bodies() -> dict[str, bytes]:
    return {
        "xlsx": hostile_sheet(
            '<row r="1"><c r="A1" t="inlineStr"><is><t>number</t></is></c>'
            '</row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
        ),
        "csv": b"number\n" + b"1\n" * (8 * 1024 * 1024),
        "png": rgba_png_with_rotation(7071),
    }


BODIES: dict[str, bytes] = {}


async def _post_loop(
    session: aiohttp.ClientSession,
    url: str,
    hostile: Hostile,
    stop: asyncio.Event,
    make: Callable[[], dict[str, object]],
) -> None:
    while not stop.is_set():
        try:
            async with session.post(url, **make()) as resp:  # type: ignore[arg-type]
                await resp.read()
                hostile.note(str(resp.status))
        except (aiohttp.ClientError, OSError) as exc:
            hostile.note(type(exc).__name__)
            await asyncio.sleep(0.05)


async def xlsx_bomb(
    session: aiohttp.ClientSession, base: str, token: str, hostile: Hostile, stop: asyncio.Event
) -> None:
    url = f"{base}/api/v1/reports/ledger?buyer_tax_id={BUYER}&year=2022"
    await _post_loop(
        session,
        url,
        hostile,
        stop,
        lambda: {"data": BODIES["xlsx"], "headers": {"Content-Type": XLSX, **_auth(token)}},
    )


async def csv_16mib(
    session: aiohttp.ClientSession, base: str, token: str, hostile: Hostile, stop: asyncio.Event
) -> None:
    await _post_loop(
        session,
        f"{base}/api/v1/verify/batch",
        hostile,
        stop,
        lambda: {
            "data": io.BytesIO(BODIES["csv"]),
            "headers": {"Content-Type": "text/csv", **_auth(token)},
        },
    )


async def big_png(
    session: aiohttp.ClientSession, base: str, token: str, hostile: Hostile, stop: asyncio.Event
) -> None:
    await _post_loop(
        session,
        f"{base}/api/v1/verify/qr",
        hostile,
        stop,
        lambda: {"data": BODIES["png"], "headers": {"Content-Type": "image/png", **_auth(token)}},
    )


async def chunked_oversize(
    session: aiohttp.ClientSession, base: str, token: str, hostile: Hostile, stop: asyncio.Event
) -> None:
    part = b"1" * (20 * 1024 * 1024)

    async def body() -> AsyncIterator[bytes]:
        for name in ("note", "other", "image"):
            yield (
                f'--xx\r\nContent-Disposition: form-data; name="{name}"; filename="x"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            for start in range(0, len(part), 256 * 1024):
                yield part[start : start + 256 * 1024]
            yield b"\r\n"
        yield b"--xx--\r\n"

    await _post_loop(
        session,
        f"{base}/api/v1/verify/qr",
        hostile,
        stop,
        lambda: {
            "data": body(),
            "headers": {"Content-Type": "multipart/form-data; boundary=xx", **_auth(token)},
        },
    )


async def slow_clients(
    session: aiohttp.ClientSession, base: str, token: str, hostile: Hostile, stop: asyncio.Event
) -> None:
    host, port = base.removeprefix("http://").split(":")

    async def one() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(
                    f"POST /api/v1/verify/qr HTTP/1.1\r\nHost: b\r\nAuthorization: "
                    f"Bearer {token}\r\nContent-Type: image/png\r\n"
                    "Content-Length: 1000000\r\n\r\n".encode()
                )
                while not stop.is_set() and not reader.at_eof():
                    writer.write(b"x")
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1):
                            line = await reader.readline()
                            if line:
                                hostile.note(line.split()[1].decode())
                                break
                writer.close()
            except OSError as exc:
                hostile.note(type(exc).__name__)
                await asyncio.sleep(0.1)

    await asyncio.gather(*(one() for _ in range(32)))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


DRIVERS: dict[str, Driver] = {
    "xlsx-bomb": xlsx_bomb,
    "csv-16mib": csv_16mib,
    "big-png": big_png,
    "slow-clients": slow_clients,
    "chunked-oversize": chunked_oversize,
}


def kinds(scenario: str) -> list[str]:
    """The uploads a scenario sends: its own, or every one for `all`."""
    return list(DRIVERS) if scenario == "all" else [scenario]


class HostileLoad:
    """The scenario's drivers on their own event loop in a thread, two of each upload in
    flight, until `stop()`."""

    def __init__(self, scenario: str, base: str, token: str) -> None:
        self.parts = {kind: Hostile() for kind in kinds(scenario)}
        self._base, self._token = base, token
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="hostile", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(
                *(
                    DRIVERS[kind](session, self._base, self._token, hostile, self._stop)
                    for kind, hostile in self.parts.items()
                    for _ in range(2)
                )
            )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=150)

    def answers(self) -> Counter[str]:
        return sum((h.answers for h in self.parts.values()), Counter())


def peak_rss_mb(server: Server) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, interrupts included)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def loopback_bytes() -> int:
    path = Path("/sys/class/net/lo/statistics/rx_bytes")
    return int(path.read_text()) if path.exists() else 0


@dataclass(frozen=True, slots=True)
class Outcome:
    result: WrkResult
    rss_mb: float
    answers: Counter[str]  # what the hostile uploads were answered
    rates: dict[str, float]  # hostile uploads answered per second, by kind
    client_cpu: float  # share of a core used by this process (the hostile uploads' sender)
    others: float  # share of a core used meanwhile by everything else on the machine


def run_scenario(
    scenario: str,
    server: Server,
    wrk: list[str],
    args: argparse.Namespace,
    paths: Path,
    token: str,
    hostile_key: str,
    prepare: Callable[[], None] | None = None,
) -> Outcome:
    with running(server):
        if args.warmup > 0:
            run_wrk(wrk, server, args, args.warmup, paths, token)
        if prepare is not None:
            prepare()
        load = None
        before = resource.getrusage(resource.RUSAGE_SELF)
        if scenario != "quiet":
            load = HostileLoad(scenario, f"http://127.0.0.1:{server.port}", hostile_key)
            load.start()
        busy, started = busy_seconds(), time.monotonic()
        try:
            result = run_wrk(wrk, server, args, args.duration, paths, token)
        finally:
            busy, wall = busy_seconds() - busy, time.monotonic() - started
            if load is not None:
                load.stop()
        rss = peak_rss_mb(server)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / args.duration
    others = busy / wall - result.server_cpu - result.wrk_cpu - cpu
    if load is None:
        return Outcome(result, rss, Counter(), {}, cpu, others)
    rates = {kind: h.total / wall for kind, h in load.parts.items()}
    return Outcome(result, rss, load.answers(), rates, cpu, others)


# --------------------------------------------------------------------------- per request

#: Uploads sent one after another per kind, to measure what each costs (no lookups running).
COST_UPLOADS = {"xlsx-bomb": 400, "csv-16mib": 60, "big-png": 400, "chunked-oversize": 12}


@dataclass(frozen=True, slots=True)
class Cost:
    kind: str
    uploads: int
    server_ms: float  # CPU of the server process per upload (all its threads)
    sender_ms: float  # CPU of this process per upload
    loopback_mb: float  # bytes through the loopback device per upload, both ways
    answers: str


async def _send(kind: str, base: str, key: str, count: int) -> Hostile:
    stop = asyncio.Event()
    hostile = Hostile(limit=count, stop=stop)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await DRIVERS[kind](session, base, key, hostile, stop)
    return hostile


def upload_cost(server: Server, kind: str, key: str, count: int) -> Cost:
    base = f"http://127.0.0.1:{server.port}"
    asyncio.run(_send(kind, base, key, max(1, count // 10)))  # warm-up
    cpu, lo = server.cpu_seconds(), loopback_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF)
    hostile = asyncio.run(_send(kind, base, key, count))
    time.sleep(0.3)  # the server's last lingering read
    after = resource.getrusage(resource.RUSAGE_SELF)
    sent = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    n = hostile.total
    return Cost(
        kind,
        n,
        (server.cpu_seconds() - cpu) * 1000 / n,
        sent * 1000 / n,
        (loopback_bytes() - lo) / n / 1e6,
        summary(hostile.answers),
    )


def deaf_cost(server: Server, key: str) -> Cost:
    """One photo upload declaring a terabyte, sent as fast as the server reads it by a client
    that never reads its answer, until the server closes the connection."""
    cpu, lo = server.cpu_seconds(), loopback_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF)
    block = bytes(256 * 1024)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"POST /api/v1/verify/qr HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: image/png\r\nContent-Length: {1 << 40}\r\n\r\n".encode()
        )
        deadline = time.monotonic() + 60
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                sock.sendall(block)
    time.sleep(0.3)
    after = resource.getrusage(resource.RUSAGE_SELF)
    sent = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Cost(
        "deaf-oversize",
        1,
        (server.cpu_seconds() - cpu) * 1000,
        sent * 1000,
        (loopback_bytes() - lo) / 1e6,
        "closed by the server",
    )


def measure_costs(server: Server, key: str) -> list[Cost]:
    with running(server):
        costs = [upload_cost(server, kind, key, n) for kind, n in COST_UPLOADS.items()]
        costs.append(deaf_cost(server, key))
    return costs


# --------------------------------------------------------------------------- report


def print_errors(server: Server) -> None:
    """The server's logged errors, each kind once with its count (the traceback's last line)."""
    seen: Counter[str] = Counter()
    for line in server.log_tail(100_000).splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            entry = json.loads(line)
            if entry.get("level") == "error":
                last = (entry.get("exc") or entry.get("msg", "")).strip().splitlines()[-1:]
                seen[f"{entry.get('path', '')} {' '.join(last)}"[:240]] += 1
    for what, count in seen.most_common(10):
        print(f"  ! server logged {count}x: {what}")


def _ratio(runs: list[Outcome], quiet: list[Outcome]) -> float:
    """p99 over the same round's quiet p99, the median over rounds (the machine's other load
    drifts between rounds far more than within one)."""
    return statistics.median(
        o.result.p99_ms / q.result.p99_ms for o, q in zip(runs, quiet, strict=True)
    )


def report(outcomes: dict[str, list[Outcome]], goal_rows: Sequence[str]) -> bool:
    quiet = outcomes["quiet"]
    print()
    print(
        f"{'scenario':<26} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99/quiet':>9} "
        f"{'peak RSS':>8} {'srv cpu':>7} {'sender':>6} {'others':>6} {'uploads/s':>9}  "
        "hostile uploads answered (last round)"
    )
    met = True
    for name, runs in outcomes.items():
        ratio = _ratio(runs, quiet)
        if name in goal_rows:
            met = met and ratio <= GOAL

        def med(value: Callable[[Outcome], float], runs: list[Outcome] = runs) -> float:
            return statistics.median(value(o) for o in runs)

        print(
            f"{name:<26} {med(lambda o: o.result.rps):>6.0f} "
            f"{med(lambda o: o.result.p50_ms):>7.2f} {med(lambda o: o.result.p99_ms):>7.2f} "
            f"{ratio:>8.2f}x {max(o.rss_mb for o in runs):>5.0f} MB "
            f"{med(lambda o: o.result.server_cpu):>7.0%} {med(lambda o: o.client_cpu):>6.0%} "
            f"{med(lambda o: o.others):>6.0%} {med(lambda o: sum(o.rates.values())):>9.0f}  "
            f"{summary(runs[-1].answers)}"
        )
    errors = sum(o.result.error_count for runs in outcomes.values() for o in runs)
    print(f"lookup errors (socket errors, timeouts, non-2xx): {errors}")
    print(
        f"goal: p99 under hostile load at most {GOAL:g}x the quiet p99 (rows without limits): "
        f"{'met' if met else 'MISSED'}"
    )
    return met


def report_costs(costs: list[Cost], outcomes: dict[str, list[Outcome]], duration: float) -> None:
    """What each upload costs, and what the hostile uploads of each scenario cost at the rate
    the sender reached, next to what the lookups cost."""
    quiet = outcomes["quiet"]
    lookup_ms = statistics.median(
        o.result.server_cpu * duration * 1000 / o.result.requests for o in quiet
    )
    print()
    print("CPU per hostile upload (uploads one after another, no lookups running):")
    print(f"  {'upload':<17} {'uploads':>7} {'server ms':>9} {'sender ms':>9} {'loopback':>9}")
    for c in costs:
        print(
            f"  {c.kind:<17} {c.uploads:>7} {c.server_ms:>9.2f} {c.sender_ms:>9.2f} "
            f"{c.loopback_mb:>6.1f} MB  {c.answers}"
        )
    print(f"  a lookup (quiet runs): {lookup_ms:.3f} ms of server CPU")
    per_upload = {c.kind: c.server_ms for c in costs}
    print(
        "where the CPU went in each run (share of one core; the machine has "
        f"{os.cpu_count()}): lookups = req/s x a lookup's CPU, uploads on the server = "
        "uploads/s x their CPU above"
    )
    print(
        f"  {'scenario':<26} {'lookups':>7} {'uploads':>7} {'sender':>6} {'wrk':>5} {'others':>6}"
    )
    med = statistics.median
    for name, runs in outcomes.items():
        uploads = med(
            sum(rate * per_upload.get(kind, 0.0) / 1000 for kind, rate in o.rates.items())
            for o in runs
        )
        print(
            f"  {name:<26} {med(o.result.rps for o in runs) * lookup_ms / 1000:>7.0%} "
            f"{uploads:>7.0%} {med(o.client_cpu for o in runs):>6.0%} "
            f"{med(o.result.wrk_cpu for o in runs):>5.0%} {med(o.others for o in runs):>6.0%}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hostile",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, among {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--limits",
        choices=("none", "budget", "both"),
        default="none",
        help="none: the hostile key has no rate limits (the goal's worst case); budget: it is "
        "an audit key with the role's default budget, its burst spent before each run; both",
    )
    parser.add_argument("--rounds", type=int, default=1, help="measurements per scenario")
    parser.add_argument("--duration", type=float, default=8, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per start")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-c)")
    parser.add_argument("--urls", type=int, default=2000, help="distinct lookup URLs")
    parser.add_argument("--per-series", type=int, default=500, help="demo invoices per series")
    parser.add_argument("--seed", type=int, default=1, help="seed of the URL mix")
    parser.add_argument(
        "--no-costs", action="store_true", help="skip the CPU-per-upload measurement"
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not set(chosen) <= set(SCENARIOS) or args.rounds < 1 or args.duration <= 0:
        parser.error(f"--scenarios among {', '.join(SCENARIOS)}; --rounds >= 1; --duration > 0")
    args.chosen = chosen
    return args


#: The budget the hostile key has in `--limits budget`: the audit role's default (it may post
#: ledgers for its buyer, batches and photos), the lookups' key unlimited.
BUDGET_ROLE = "audit"
BUDGET_LABEL = " [audit budget]"


def budget_env(env: dict[str, str]) -> dict[str, str]:
    """The bench's environment with the key budgets back to each role's default, except the
    verify role of wrk's key; the per-invoice and misses budgets stay out of reach (wrk looks
    the same invoices up again and again, and the uploads are refused before any lookup)."""
    out = {k: v for k, v in env.items() if not k.startswith("INVOICE_RATE_KEY_")}
    out["INVOICE_RATE_VERIFY_PER_MINUTE"] = out["INVOICE_RATE_VERIFY_BURST"] = str(10**9)
    return out


def spend_burst(port: int, key: str, lookups: list[Lookup]) -> None:
    """Spend the hostile key's burst with one batch of that many lookups (a batch spends one
    token per row), so the run measures the steady state of an attack that has gone on for
    more than the burst lasts (5,000 uploads: under half a minute at the rates reached)."""
    burst = ROLE_KEY_BUDGETS[BUDGET_ROLE].burst
    rows = [dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(lk.path).query)) for lk in lookups]
    body = json.dumps([rows[i % len(rows)] for i in range(burst)]).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/verify/batch",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        answered = resp.read().count(b"\n")
    if answered != burst:
        raise SetupError(f"spending the key's burst: {answered} of {burst} rows answered")


def bench(args: argparse.Namespace, workdir: Path) -> bool:
    wrk = [ensure_wrk()]
    service = _service_command()
    env = service_env()
    for line in machine_info(wrk[0]):
        print(line)
    data = workdir / "data"
    run_checked(
        [*service, "demo", "--data-dir", str(data), "--per-series", str(args.per_series)],
        "invoice-verify demo",
        env,
    )
    lookups = build_lookups(data / "invoices.sqlite3", args.urls, args.seed)
    paths = workdir / "paths.txt"
    paths.write_text("".join(f"{lookup.path}\n" for lookup in lookups))

    def key(role: str, *scope: str) -> str:
        create = [*service, "keys", "create", "--role", role, "--name", "bench"]
        create += [arg for tax_id in scope for arg in ("--scope", tax_id)]
        out = run_checked([*create, "--data-dir", str(data)], "creating an API key", env)
        return out.strip().splitlines()[-1]

    token, admin, audit = key("verify"), key("admin"), key(BUDGET_ROLE, BUYER)
    BODIES.update(_bodies())
    port = free_port()
    command = [*service, "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(data)]
    server = Server("embedded", command, env, port, workdir / "server.log")
    budgeted = Server("budgeted", command, budget_env(env), port, workdir / "server.log")
    with running(server):
        check_sample(port, lookups, token, 50)
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, warm-up "
        f"{args.warmup:g}s per start, {args.rounds} round(s); each hostile upload two at "
        "a time, again and again",
        flush=True,
    )
    runs: list[tuple[str, str, Server, str, Callable[[], None] | None]] = [
        ("quiet", "quiet", server, admin, None)
    ]
    if args.limits in ("none", "both"):
        runs += [(name, name, server, admin, None) for name in args.chosen]
    if args.limits in ("budget", "both"):
        runs += [
            (
                name + BUDGET_LABEL,
                name,
                budgeted,
                audit,
                functools.partial(spend_burst, port, audit, lookups),
            )
            for name in args.chosen
        ]
    outcomes: dict[str, list[Outcome]] = {label: [] for label, *_ in runs}
    for round_no in range(1, args.rounds + 1):
        for label, scenario, srv, hostile_key, prepare in runs:
            outcome = run_scenario(scenario, srv, wrk, args, paths, token, hostile_key, prepare)
            outcomes[label].append(outcome)
            r = outcome.result
            print(
                f"  round {round_no} {label:<26} {r.rps:6.0f} req/s  p50 {r.p50_ms:6.2f} ms"
                f"  p99 {r.p99_ms:7.2f} ms  others {outcome.others:4.0%}  "
                f"hostile: {summary(outcome.answers)}",
                flush=True,
            )
    print_errors(server)
    met = report(outcomes, [label for label, *_ in runs if label in args.chosen])
    if not args.no_costs:
        report_costs(measure_costs(server, admin), outcomes, args.duration)
    return met


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(
        [
            os.path.relpath(sys.executable, Path.cwd()),
            "-m",
            "bench.hostile",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
    print(f"reproduce: {command}   (or ./run bench-hostile)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    try:
        met = bench(args, workdir)
    except SetupError as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
