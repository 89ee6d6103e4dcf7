"""What two service processes can get out of this machine when they share nothing: one
`invoice-verify serve` alone, then two on their own data directories, each under its own
`wrk` at the same time, in alternating rounds. The ceiling for `bench.lookup --workers 1,2`
(bench/README.md#several-workers---workers-12): two workers share the data directory, the
port and the metrics files; these two share only the machine.

    .venv/bin/python -m bench.workers_apart [--rounds 3] [--duration 8] [--per-series 500]

Prints per round the lookups/s and CPU per lookup of each server, and the ratio of the two
together to the one alone. Uses bench.lookup's setup (demo data, a `verify` key, rate
limits out of reach, 4,000 lookups of every key form) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import lookup as bl


def _prepare(workdir: Path, per_series: int) -> tuple[list[Path], list[str], Path]:
    service, env = bl._service_command(), bl.service_env()
    dirs, tokens = [], []
    for n in (1, 2):
        data = workdir / f"data{n}"
        bl.run_checked([*service, "demo", "--data-dir", str(data), "--per-series",
                        str(per_series)], "invoice-verify demo", env)
        tokens.append(bl.run_checked(
            [*service, "keys", "create", "--role", "verify", "--name", "bench",
             "--data-dir", str(data)], "creating an API key", env).strip().splitlines()[-1])
        dirs.append(data)
    paths = workdir / "paths"
    lookups = bl.build_lookups(dirs[0] / "invoices.sqlite3", 4000, 1)
    paths.write_text("\n".join(lookup.path for lookup in lookups) + "\n")
    return dirs, tokens, paths


def _server(name: str, data: Path, workdir: Path) -> bl.Server:
    port = bl.free_port()
    return bl.Server(name, [*bl._service_command(), "serve", "--host", "127.0.0.1", "--port",
                            str(port), "--data-dir", str(data)],
                     bl.service_env(), port, workdir / f"{name}.log")


def _measure(wrk: list[str], server: bl.Server, args: argparse.Namespace, paths: Path,
             token: str) -> bl.WrkResult:
    bl.run_wrk(wrk, server, args, args.warmup, paths, token)
    return bl.run_wrk(wrk, server, args, args.duration, paths, token)


def _cpu(result: bl.WrkResult) -> str:
    return f"{result.rps:6.0f} req/s, {result.server_cpu / result.rps * 1e6:4.0f} us/lookup"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers_apart", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--per-series", type=int, default=500)
    args = parser.parse_args(argv)
    args.threads, args.connections = 1, 32
    print(f"reproduce: .venv/bin/python -m bench.workers_apart --rounds {args.rounds} "
          f"--duration {args.duration:g} --per-series {args.per_series}", flush=True)
    wrk = [bl.ensure_wrk()]
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-apart-") as tmp:
        workdir = Path(tmp)
        dirs, tokens, paths = _prepare(workdir, args.per_series)
        for number in range(1, args.rounds + 1):
            alone = _server("alone", dirs[0], workdir)
            with bl.running(alone):
                one = _measure(wrk, alone, args, paths, tokens[0])
            pair = [_server(f"apart{n}", dirs[n], workdir) for n in (0, 1)]
            with bl.running(pair[0]), bl.running(pair[1]), ThreadPoolExecutor(2) as pool:
                loads = [pool.submit(_measure, wrk, pair[n], args, paths, tokens[n])
                         for n in (0, 1)]
                results = [load.result() for load in loads]
            both = sum(result.rps for result in results)
            ratios.append(both / one.rps)
            print(f"round {number}: alone {_cpu(one)}; two apart {_cpu(results[0])} + "
                  f"{_cpu(results[1])}: {ratios[-1]:.2f}x alone", flush=True)
    ratios.sort()
    print(f"two processes sharing nothing / one: median {ratios[len(ratios) // 2]:.2f}x")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except bl.SetupError as exc:
        print(f"bench setup failed: {exc}")
        raise SystemExit(2) from None
