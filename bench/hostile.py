"""Lookup latency and throughput while hostile uploads run (issue 15), against a quiet run.

Runs the real service (`invoice-verify serve`, embedded default, demo data) and drives it with
`wrk` over the lookup URLs of `bench/lookup.py`, once quiet and once while each hostile upload
is sent again and again from a second client:

- `xlsx-bomb`: a 1.5 KB XLSX ledger whose sheet claims A1:XFD1048576, one row at r=1048576;
- `csv-16mib`: a 16 MiB CSV batch of 8 million one-cell rows;
- `big-png`: a 7071x7071 RGBA PNG with an EXIF rotation (212 KB, 200 MB decoded);
- `slow-clients`: 32 connections sending a photo's body one byte a second;
- `chunked-oversize`: a 60 MiB chunked multipart photo upload (limit 20 MiB);
- `all`: every one of them at once.

Each scenario restarts the server. Prints, per scenario, requests/s, p50 and p99 of the
lookups, p99 as a multiple of the quiet p99 (the goal is at most 2x), the server's peak RSS
and CPU, the CPU the hostile sender itself used (it shares the machine with the server and
wrk), and what the hostile uploads were answered. Run from the repository root:
`.venv/bin/python -m bench.hostile` (`--help` for the knobs); `./run bench-hostile` too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.lookup import (
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

BUYER = "0314409058-002"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SCENARIOS = ("xlsx-bomb", "csv-16mib", "big-png", "slow-clients", "chunked-oversize", "all")
GOAL = 2.0  # p99 under hostile load / quiet p99


@dataclass
class Hostile:
    """What one scenario's uploads were answered (status or exception name -> count)."""

    answers: Counter[str] = field(default_factory=Counter)

    def note(self, what: str) -> None:
        self.answers[what] += 1

    def summary(self) -> str:
        return ", ".join(f"{k} x{n}" for k, n in sorted(self.answers.items())) or "-"


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


DRIVERS: dict[str, list[Driver]] = {
    "xlsx-bomb": [xlsx_bomb],
    "csv-16mib": [csv_16mib],
    "big-png": [big_png],
    "slow-clients": [slow_clients],
    "chunked-oversize": [chunked_oversize],
}
DRIVERS["all"] = [d for name in SCENARIOS[:-1] for d in DRIVERS[name]]


class HostileLoad:
    """The scenario's drivers on their own event loop in a thread, two of each upload in
    flight, until `stop()`."""

    def __init__(self, drivers: list[Driver], base: str, token: str) -> None:
        self.hostile = Hostile()
        self._drivers, self._base, self._token = drivers, base, token
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
                    driver(session, self._base, self._token, self.hostile, self._stop)
                    for driver in self._drivers
                    for _ in range(2)
                )
            )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=150)


def peak_rss_mb(server: Server) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True, slots=True)
class Outcome:
    result: WrkResult
    rss_mb: float
    hostile: str
    client_cpu: float  # share of a core used by this process (the hostile uploads' sender)


def run_scenario(
    name: str,
    server: Server,
    wrk: list[str],
    args: argparse.Namespace,
    paths: Path,
    token: str,
    admin: str,
) -> Outcome:
    with running(server):
        if args.warmup > 0:
            run_wrk(wrk, server, args, args.warmup, paths, token)
        load = None
        before = resource.getrusage(resource.RUSAGE_SELF)
        if name != "quiet":
            load = HostileLoad(DRIVERS[name], f"http://127.0.0.1:{server.port}", admin)
            load.start()
        try:
            result = run_wrk(wrk, server, args, args.duration, paths, token)
        finally:
            if load is not None:
                load.stop()
        rss = peak_rss_mb(server)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / args.duration
    return Outcome(result, rss, load.hostile.summary() if load is not None else "-", cpu)


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


def report(outcomes: dict[str, list[Outcome]]) -> bool:
    quiet_p99 = statistics.median(o.result.p99_ms for o in outcomes["quiet"])
    print()
    print(
        f"{'scenario':<17} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99/quiet':>9} "
        f"{'peak RSS':>9} {'srv cpu':>7} {'sender':>6}  hostile uploads answered"
    )
    met = True
    for name, runs in outcomes.items():
        p99 = statistics.median(o.result.p99_ms for o in runs)
        ratio = p99 / quiet_p99
        if name != "quiet":
            met = met and ratio <= GOAL
        print(
            f"{name:<17} {statistics.median(o.result.rps for o in runs):>7.0f} "
            f"{statistics.median(o.result.p50_ms for o in runs):>7.2f} {p99:>7.2f} "
            f"{ratio:>8.2f}x {max(o.rss_mb for o in runs):>6.0f} MB "
            f"{statistics.median(o.result.server_cpu for o in runs):>7.0%} "
            f"{statistics.median(o.client_cpu for o in runs):>6.0%}  {runs[-1].hostile}"
        )
    errors = sum(o.result.error_count for runs in outcomes.values() for o in runs)
    print(f"lookup errors (socket errors, timeouts, non-2xx): {errors}")
    print(
        f"goal: p99 under hostile load at most {GOAL:g}x the quiet p99: "
        f"{'met' if met else 'MISSED'}"
    )
    return met


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
    parser.add_argument("--rounds", type=int, default=1, help="measurements per scenario")
    parser.add_argument("--duration", type=float, default=8, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per start")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-c)")
    parser.add_argument("--urls", type=int, default=2000, help="distinct lookup URLs")
    parser.add_argument("--per-series", type=int, default=500, help="demo invoices per series")
    parser.add_argument("--seed", type=int, default=1, help="seed of the URL mix")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not set(chosen) <= set(SCENARIOS) or args.rounds < 1 or args.duration <= 0:
        parser.error(f"--scenarios among {', '.join(SCENARIOS)}; --rounds >= 1; --duration > 0")
    args.chosen = chosen
    return args


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

    def key(role: str) -> str:
        return (
            run_checked(
                [
                    *service,
                    "keys",
                    "create",
                    "--role",
                    role,
                    "--name",
                    "bench",
                    "--data-dir",
                    str(data),
                ],
                "creating an API key",
                env,
            )
            .strip()
            .splitlines()[-1]
        )

    token, admin = key("verify"), key("admin")
    BODIES.update(_bodies())
    port = free_port()
    server = Server(
        "embedded",
        [*service, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)],
        env,
        port,
        workdir / "server.log",
    )
    with running(server):
        check_sample(port, lookups, token, 50)
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, warm-up "
        f"{args.warmup:g}s per start, {args.rounds} round(s); each hostile upload two at "
        "a time, again and again",
        flush=True,
    )
    outcomes: dict[str, list[Outcome]] = {name: [] for name in ["quiet", *args.chosen]}
    for round_no in range(1, args.rounds + 1):
        for name in outcomes:
            outcome = run_scenario(name, server, wrk, args, paths, token, admin)
            outcomes[name].append(outcome)
            r = outcome.result
            print(
                f"  round {round_no} {name:<17} {r.rps:7.0f} req/s  p50 {r.p50_ms:6.2f} ms"
                f"  p99 {r.p99_ms:7.2f} ms  peak RSS {outcome.rss_mb:5.0f} MB  "
                f"hostile: {outcome.hostile}",
                flush=True,
            )
    print_errors(server)
    return report(outcomes)


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
