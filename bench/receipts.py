"""Receipts signed per second against the plain lookup, in the same run (docs/receipts.md).

Two measurements:

1. In process: `Receipts.sign` on a real answer (the demo's, with its stored invoice), and
   `Receipts.check`, each timed over a few thousand calls: receipts signed (and checked) per
   second on one core, and microseconds per receipt.
2. Over HTTP, as `bench.lookup_pair` compares two builds: two services on the same data
   directory, both pinned to the same core (`taskset -c 1`) and loaded at the same moment,
   each by its own `wrk` on the other core, over the same lookups; one gets them plain, the
   other with `receipt=true`. They share whatever else the machine does, so the ratio of
   their throughputs is the ratio of their costs per request: the receipt's cost is
   1 - ratio (goal: at most 0.20).

    .venv/bin/python -m bench.receipts --rounds 5
    .venv/bin/python -m bench.receipts --rounds 5 --before /tmp/old-tree

`--before TREE` (a snapshot of another build, e.g. `git archive`; may be repeated) adds a
service from that tree, named after its directory, on the same core and data, loaded with
the `receipt=true` lookups at the same moment as the others: each round then gives every
build's receipt cost against the same plain lookups, so a change to receipts is compared
in one run, not across runs that the shared machine's load moves.

Needs two CPUs, taskset and wrk (installed with apt-get when missing). Nothing asserts on
the figures; exit 0 after a measurement, 2 when the setup fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lookup import REPO, Server, SetupError, WrkResult, ensure_wrk, fetch, run_wrk
from bench.lookup_pair import prepare, server
from indexer.store.sqlite import open_sqlite_store
from verify.receipts.keyset import KeySet
from verify.receipts.signing import Receipts, verify_with_jwks


def per_second(call: Callable[[], object], seconds: float) -> float:
    """Calls per second of `call`, over about `seconds`."""
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            call()
        count += 200
    return count / elapsed


def in_process(answer: dict[str, Any], data: Path, seconds: float) -> dict[str, float]:
    """Signing and checking on this core, with the answer's stored invoice (its digest is
    part of every receipt)."""

    async def stored() -> Any:
        async with open_sqlite_store(data / "invoices.sqlite3") as store:
            return await store.get_invoice(answer["invoice"]["id"])

    invoice = asyncio.run(stored())
    receipts = Receipts(KeySet.generate(), "invoice-verify")
    token, _ = receipts.sign(answer, invoice, "bench")
    signed = per_second(lambda: receipts.sign(answer, invoice, "bench"), seconds)
    checked = per_second(lambda: receipts.check(token), seconds)
    return {"signed_per_s": signed, "checked_per_s": checked, "bytes": len(token)}


def sample(port: int, plain: Path, with_receipt: Path, token: str) -> dict[str, Any]:
    """A few of the URLs must answer 200, those asking for one with a receipt that verifies
    against the service's JWK Set; returns one answer with its receipt."""
    _, jwks = fetch(f"http://127.0.0.1:{port}/.well-known/jwks.json", None)
    found: dict[str, Any] | None = None
    for path in with_receipt.read_text().splitlines()[::400]:
        code, body = fetch(f"http://127.0.0.1:{port}{path}", token)
        if code != 200 or not isinstance(body, dict) or "receipt" not in body:
            raise SetupError(f"GET {path} answered {code} {str(body)[:300]}")
        claims = verify_with_jwks(body["receipt"], jwks).claims
        if claims["status"] != body["status"]:
            raise SetupError(f"the receipt of {path} says {claims['status']}")
        if body.get("invoice") and found is None:
            found = body
    for path in plain.read_text().splitlines()[::400]:
        code, body = fetch(f"http://127.0.0.1:{port}{path}", token)
        if code != 200 or "receipt" in body:
            raise SetupError(f"GET {path} answered {code} {str(body)[:300]}")
    if found is None:
        raise SetupError("no sampled lookup found an invoice")
    return found


def load_pair(
    wrk: str, pairs: Sequence[tuple[Server, Path]], token: str, duration: float, connections: int
) -> list[WrkResult]:
    """Each server over its own paths, all loaded at once from CPU 0."""
    options = argparse.Namespace(threads=1, connections=connections)
    with ThreadPoolExecutor(len(pairs)) as pool:
        runs = [
            pool.submit(run_wrk, ["taskset", "-c", "0", wrk], srv, options, duration, paths, token)
            for srv, paths in pairs
        ]
        results = [run.result() for run in runs]
    for (srv, _), result in zip(pairs, results, strict=True):
        if result.errors:
            raise SetupError(f"{srv.name}: wrk saw errors {result.errors}")
    return results


@dataclass(frozen=True, slots=True)
class Round:
    plain: WrkResult
    receipt: WrkResult
    others: tuple[WrkResult, ...] = ()  # `--before`: other builds' receipts

    @property
    def ratio(self) -> float:
        """Throughput with receipts over plain, at the same moment on the same core."""
        return self.receipt.rps / self.plain.rps

    def ratio_of(self, result: WrkResult) -> float:
        return result.rps / self.plain.rps

    @property
    def cpu_us(self) -> tuple[float, float]:
        """Server CPU per request, plain and with receipts: what a request costs, whatever
        else the machine was doing meanwhile."""
        return (
            1e6 * self.plain.server_cpu / self.plain.rps,
            1e6 * self.receipt.server_cpu / self.receipt.rps,
        )


def summary(
    rounds: list[Round], alone: dict[str, float], names: Sequence[str] = ()
) -> dict[str, Any]:
    ratio = statistics.median(r.ratio for r in rounds)
    plain_cpu = statistics.median(r.cpu_us[0] for r in rounds)
    receipt_cpu = statistics.median(r.cpu_us[1] for r in rounds)
    return {
        "http": {
            "plain_lookups_per_s": round(statistics.median(r.plain.rps for r in rounds)),
            "lookups_with_receipt_per_s": round(statistics.median(r.receipt.rps for r in rounds)),
            "throughput_ratio": round(ratio, 3),
            "ratios": [round(r.ratio, 3) for r in rounds],
            "receipt_cost_by_throughput": round(1 - ratio, 3),
            "cpu_us_per_request": {"plain": round(plain_cpu), "with_receipt": round(receipt_cpu)},
            "receipt_cost_by_cpu": round(1 - plain_cpu / receipt_cpu, 3),
            "goal_cost_at_most": 0.2,
            **_others(rounds, names),
        },
        "in_process": {
            "receipts_signed_per_s": round(alone["signed_per_s"]),
            "us_per_receipt": round(1e6 / alone["signed_per_s"], 1),
            "receipts_checked_per_s": round(alone["checked_per_s"]),
            "receipt_bytes": alone["bytes"],
        },
    }


def _others(rounds: list[Round], names: Sequence[str]) -> dict[str, Any]:
    """The other builds' figures, from the same rounds (`--before`)."""
    figures: dict[str, Any] = {}
    for index, name in enumerate(names):
        results = [r.others[index] for r in rounds]
        ratios = [r.ratio_of(r.others[index]) for r in rounds]
        figures[name] = {
            "lookups_with_receipt_per_s": round(statistics.median(b.rps for b in results)),
            "throughput_ratio": round(statistics.median(ratios), 3),
            "ratios": [round(ratio, 3) for ratio in ratios],
            "receipt_cost_by_throughput": round(1 - statistics.median(ratios), 3),
            "cpu_us_per_request": round(
                statistics.median(1e6 * b.server_cpu / b.rps for b in results)
            ),
        }
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load first")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c per server")
    parser.add_argument("--per-series", type=int, default=2500)
    parser.add_argument("--urls", type=int, default=4000)
    parser.add_argument(
        "--before",
        type=Path,
        action="append",
        default=[],
        help="another build's tree (repeatable): its receipts in the same rounds",
    )
    parser.add_argument(
        "--sign-seconds", type=float, default=3, help="seconds of each in-process timing"
    )
    args = parser.parse_args(argv)
    command = [os.path.relpath(sys.executable, REPO), "-m", "bench.receipts"]
    command += sys.argv[1:] if argv is None else list(argv)
    print(f"reproduce: cd {shlex.quote(str(REPO))} && {shlex.join(command)}", flush=True)
    if len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None:
        raise SetupError("needs two usable CPUs and taskset")
    wrk = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="bench-receipts-"))
    try:
        data, env, token, plain = prepare("embedded", workdir, args.per_series, args.urls)
        env = {**env, "INVOICE_RATE_RECEIPTS_PER_HOUR": "1000000000"}  # no receipt budget
        with_receipt = workdir / "receipt-paths.txt"
        with_receipt.write_text(
            "".join(f"{p}&receipt=true\n" for p in plain.read_text().splitlines())
        )
        servers = [
            server("plain", REPO, data, env, workdir),
            server("receipt", REPO, data, env, workdir),
        ]
        names = [tree.resolve().name for tree in args.before]
        if len(set(names)) != len(names) or {"plain", "receipt"} & set(names):
            raise SetupError(f"the --before trees need distinct directory names: {names}")
        servers += [
            server(name, tree.resolve(), data, env, workdir)
            for name, tree in zip(names, args.before, strict=True)
        ]
        rounds: list[Round] = []
        for round_no in range(1, args.rounds + 1):
            for srv in servers:
                srv.start()
            try:
                if round_no == 1:
                    answer = sample(servers[1].port, plain, with_receipt, token)
                pairs = [(servers[0], plain), *((srv, with_receipt) for srv in servers[1:])]
                if args.warmup > 0:
                    load_pair(wrk, pairs, token, args.warmup, args.connections)
                plain_run, receipt_run, *others = load_pair(
                    wrk, pairs, token, args.duration, args.connections
                )
                done = Round(plain_run, receipt_run, tuple(others))
            finally:
                for srv in servers:
                    srv.stop()
            rounds.append(done)
            before = "".join(
                f", {name} {other.rps:6.0f} req/s "
                f"{1e6 * other.server_cpu / other.rps:4.0f} us CPU/req, "
                f"ratio {done.ratio_of(other):.3f}"
                for name, other in zip(names, done.others, strict=True)
            )
            print(
                f"  round {round_no}: plain {done.plain.rps:6.0f} req/s "
                f"{done.cpu_us[0]:4.0f} us CPU/req, with receipt {done.receipt.rps:6.0f} req/s "
                f"{done.cpu_us[1]:4.0f} us CPU/req, throughput ratio {done.ratio:.3f}{before}",
                flush=True,
            )
        figures = summary(rounds, in_process(answer, data, args.sign_seconds), names)
        print(json.dumps(figures, indent=2))
        http = figures["http"]
        print(
            f"a receipt costs {100 * http['receipt_cost_by_throughput']:.1f}% of a lookup's "
            f"throughput at the same moment, {100 * http['receipt_cost_by_cpu']:.1f}% by CPU "
            f"per request (goal: at most 20%); "
            f"{figures['in_process']['receipts_signed_per_s']} receipts signed per second on "
            "one core"
        )
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
