"""Can this machine run two busy Python processes as fast as one? A check to run before
reading `bench.lookup --workers 1,2`: a pure-Python CPU loop (JSON encoding and SHA-256, no
I/O) alone, then in two processes at once, alternating, for a few rounds.

    .venv/bin/python -m bench.cpu_scale [--rounds 3] [--seconds 5]

Prints the work done per round and the ratio of two processes to one: about 2.0 on two
free cores; well under that when the cores are shared (hyperthreads, other work).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import time
from collections.abc import Sequence


def _work(seconds: float, out: mp.Queue[int]) -> None:
    done = 0
    payload = {"a": 1, "b": [1, 2, 3], "c": "x" * 50}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(200):
            json.dumps(payload)
            hashlib.sha256(b"abc" * 20).digest()
            done += 1
    out.put(done)


def _run(processes: int, seconds: float) -> list[int]:
    out: mp.Queue[int] = mp.Queue()
    procs = [mp.Process(target=_work, args=(seconds, out)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return [out.get() for _ in procs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_scale", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    print(f"reproduce: .venv/bin/python -m bench.cpu_scale --rounds {args.rounds} "
          f"--seconds {args.seconds:g}")
    ratios = []
    for number in range(1, args.rounds + 1):
        (one,) = _run(1, args.seconds)
        two = _run(2, args.seconds)
        ratios.append(sum(two) / one)
        print(f"round {number}: one process {one}, two processes {two}: "
              f"{ratios[-1]:.2f}x one")
    ratios.sort()
    print(f"two processes / one: median {ratios[len(ratios) // 2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
