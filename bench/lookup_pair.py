"""Two builds of the service compared on the same lookups at the same moment.

On a noisy shared machine a single `bench.lookup` round swings by a third, so a change of a
few percent cannot be seen by running one build after the other. Here both services run at
once, pinned to the same core (`taskset -c 1`), each loaded by its own `wrk` on the other
core: they share whatever else the machine is doing, and the ratio of their throughputs is
the ratio of their costs per request. A is this checkout; B is another source tree
(`git worktree add /tmp/b REV`, or a copy with an experiment), run on this checkout's
virtualenv with `PYTHONPATH` set to it. `--path replica` measures the replica-hit path (a
maintenance window declared, Redis replica and Redis rate limits, as `bench.lookup
--replica`), `--path replica-miss` the same service loaded with the not-found URLs only
(each answered `unconfirmed` with a gap written: `bench.lookup`'s replica misses; B runs
on a copy of the data directory, so each build writes its own gap ledger and neither waits
for the other's commits), `--path embedded` the embedded default.

    git worktree add /tmp/b 28de7a0
    .venv/bin/python -m bench.lookup_pair --b-tree /tmp/b --path replica --rounds 3

Needs two CPUs, taskset, wrk and (for `replica`) redis-server on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.lookup import (
    LUA,
    REDIS_URL,
    REPO,
    Server,
    SetupError,
    _service_command,
    build_lookups,
    drop_namespace,
    ensure_wrk,
    free_port,
    run_checked,
    service_env,
)


def prepare(path: str, workdir: Path, per_series: int, urls: int,
            ) -> tuple[Path, dict[str, str], str, Path]:
    """Data directory, environment, API key and the file of request paths."""
    service, env = _service_command(), service_env()
    data = workdir / "data"
    replica = path in ("replica", "replica-miss")
    if replica:
        namespace = f"bench:{uuid.uuid4().hex[:12]}"
        env = {**env, "INVOICE_REDIS_URL": REDIS_URL, "INVOICE_REDIS_NAMESPACE": namespace}
        atexit.register(drop_namespace, namespace)
    print(f"loading demo data ({per_series} per series) ...", flush=True)
    run_checked([*service, "demo", "--data-dir", str(data), "--per-series", str(per_series)],
                "invoice-verify demo", env)
    token = run_checked([*service, "keys", "create", "--role", "verify", "--name", "bench",
                         "--data-dir", str(data)], "creating an API key",
                        env).strip().splitlines()[-1]
    lookups = build_lookups(data / "invoices.sqlite3", urls, seed=1)
    if replica:
        now = datetime.now(UTC)
        run_checked([*service, "outage", "declare", "--from",
                     (now - timedelta(minutes=1)).isoformat(), "--to",
                     (now + timedelta(hours=3)).isoformat(), "--system", "primary",
                     "--reason", "bench: replica-hit path", "--data-dir", str(data)],
                    "declaring the maintenance window", env)
        lookups = [lookup for lookup in lookups
                   if (lookup.expected == "not_found") == (path == "replica-miss")]
    paths = workdir / "paths.txt"
    paths.write_text("".join(f"{lookup.path}\n" for lookup in lookups))
    return data, env, token, paths


def server(name: str, tree: Path, data: Path, env: dict[str, str], workdir: Path) -> Server:
    port = free_port()
    return Server(name, ["taskset", "-c", "1", *_service_command(), "serve", "--host",
                         "127.0.0.1", "--port", str(port), "--data-dir", str(data)],
                  {**env, "PYTHONPATH": str(tree)}, port, workdir / f"{name}.log", cwd=tree)


def load_both(wrk: str, servers: Sequence[Server], paths: Path, token: str,
              duration: float, connections: int) -> list[float]:
    """Requests/s of each server, both loaded at once from CPU 0."""
    env = {**os.environ, "BENCH_TOKEN": token}
    procs = [subprocess.Popen(["taskset", "-c", "0", wrk, "-t1", f"-c{connections}",
                               f"-d{duration:g}s", "--timeout", "5s", "-s", str(LUA),
                               f"http://127.0.0.1:{s.port}", "--", str(paths)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in servers]
    rates = []
    for server, proc in zip(servers, procs, strict=True):
        out, err = proc.communicate(timeout=duration + 60)
        lines = [ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SetupError(f"wrk failed (exit {proc.returncode}): {out[-1000:]}{err[-1000:]}")
        raw = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
        if raw["status"] or raw["timeout"] or raw["connect"]:
            raise SetupError(f"wrk saw errors from {server.name}: {raw}")
        rates.append(raw["requests"] / (raw["duration_us"] / 1e6))
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--b-tree", type=Path, required=True, help="source tree of build B")
    parser.add_argument("--a-tree", type=Path, default=REPO, help="source tree of build A")
    parser.add_argument("--path", choices=("replica", "replica-miss", "embedded"),
                        default="replica")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load first")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c per server")
    parser.add_argument("--per-series", type=int, default=2500)
    parser.add_argument("--urls", type=int, default=4000)
    args = parser.parse_args(argv)
    print("reproduce: cd " + shlex.quote(str(REPO)) + " && " + shlex.join(
        [os.path.relpath(sys.executable, REPO), "-m", "bench.lookup_pair",
         *(sys.argv[1:] if argv is None else argv)]))
    if len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None:
        raise SetupError("needs two usable CPUs and taskset")
    wrk = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pair-"))
    try:
        data, env, token, paths = prepare(args.path, workdir, args.per_series, args.urls)
        data_b = data
        if args.path == "replica-miss":  # a gap ledger (gaps.sqlite3) of its own for B
            data_b = workdir / "data-b"
            shutil.copytree(data, data_b)
        servers = [server("A", args.a_tree.resolve(), data, env, workdir),
                   server("B", args.b_tree.resolve(), data_b, env, workdir)]
        ratios = []
        for round_no in range(1, args.rounds + 1):
            for s in servers:
                s.start()
            try:
                if args.warmup > 0:
                    load_both(wrk, servers, paths, token, args.warmup, args.connections)
                a, b = load_both(wrk, servers, paths, token, args.duration, args.connections)
            finally:
                for s in servers:
                    s.stop()
            ratios.append(b / a)
            print(f"  round {round_no}: A {a:7.0f} req/s  B {b:7.0f} req/s  B/A {b / a:.3f}",
                  flush=True)
        print(f"{args.path} path, B/A throughput (both on one core at once): median "
              f"{statistics.median(ratios):.3f}, per round "
              + " ".join(f"{r:.3f}" for r in ratios))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
