"""QR decoding benchmark: read rate per degradation level, for pyzbar alone, zxing-cpp alone
and the service's pipeline, with the cost per photo, per level and per pipeline stage.

    ./run bench-qr [--per-level 100] [--pairs 40] [--size 1280x960] [--seed 6] [--ablation]

Each photo holds one invoice QR (Chinese QR text, our IVQR1 text or a Vietnamese lookup URL,
alternating) degraded as `tests/verify/qr/images.py` LEVELS say: clean, mild, moderate and
hard (rotation, perspective, blur, noise, low contrast, uneven light, JPEG quality 25-70,
small codes, printed clutter) and `phone`, the hard phone-like level of issue 20 (codes of
1.5-4.5 px per module after the upload is shrunk, paper curl, screen moire, vignetting,
glare, defocus / shake / gaussian blur, shot and read noise, two JPEG compressions).
`--pairs` adds photos with two codes side by side (moderate level), where both must be read.
A photo counts as read when the exact text comes back.

Times cover the whole job the endpoint runs (`verify.qr.pool.scan`: header check, open,
EXIF, greyscale, decode) on one thread. "Per core" figures use the thread's CPU time, which
another busy process on the machine does not inflate; wall time is printed beside it. The
stage table shows what each pipeline stage costs and which photos it read; `--ablation`
runs the pipeline once without each extra stage, which is how the stages were chosen (on
`--seed 101`; report on another seed).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image

from bench.qr_candidates import candidates, previous
from tests.verify.qr.images import LEVELS, Degradation, photo
from verify.qr.decode import (
    Outcome,
    Pipeline,
    Stage,
    ZbarDecoder,
    ZxingDecoder,
    as_is,
    default_stages,
)
from verify.qr.pool import scan

MAX_PIXELS = 50_000_000
MAX_DECODED_BYTES = 160 * 1024 * 1024
PAIRS = "pairs"
PAIR_LEVEL = LEVELS["moderate"]


@dataclass
class Sample:
    level: str
    texts: list[str]
    data: bytes


@dataclass
class Result:
    """One decoder configuration over the whole set."""

    read: Counter[str] = field(default_factory=Counter)  # level -> codes read
    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    wall: list[float] = field(default_factory=list)
    by_stage: Counter[str] = field(default_factory=Counter)  # stage -> codes it read
    spent: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # stage -> s
    ran: Counter[str] = field(default_factory=Counter)  # stage -> photos it ran on

    def rate(self, level: str, samples: Sequence[Sample]) -> float:
        codes = sum(len(s.texts) for s in samples if s.level == level)
        return self.read[level] / codes

    def all_cpu(self) -> list[float]:
        return [t for times in self.cpu.values() for t in times]


def payload(rng: random.Random, i: int) -> str:
    if i % 3 == 0:
        code = f"0{rng.randint(1100, 6599)}{rng.randint(18, 25)}{rng.randint(0, 999):03d}11"
        return (f"01,10,{code},{rng.randint(0, 99_999_999):08d},{rng.randint(1, 99_999)}."
                f"{rng.randint(0, 99):02d},2024{rng.randint(1, 12):02d}{rng.randint(1, 28):02d},"
                f"{rng.randint(0, 10**20 - 1):020d},{rng.randint(0, 0xFFFF):04X},")
    if i % 3 == 1:
        return (f"IVQR1|vn|0100109106|1|C24TAA|{rng.randint(1, 99_999_999)}|"
                f"{rng.randint(10, 99_999) * 1000}|2024-{rng.randint(1, 12):02d}-15")
    return (f"https://hoadon.example.vn/tra-cuu?nbmst=0100109106&khmshdon=1&khhdon=C24TAA"
            f"&shdon={rng.randint(1, 99_999_999)}&tgtttbso={rng.randint(10, 99_999) * 1000}")


def build_set(per_level: int, pairs: int, size: tuple[int, int], seed: int) -> list[Sample]:
    rng = random.Random(seed)
    samples = []
    levels: list[tuple[str, Degradation, int]] = [(name, deg, 1) for name, deg in
                                                  LEVELS.items()]
    for name, deg, count in [*levels, (PAIRS, PAIR_LEVEL, 2)]:
        for i in range(pairs if name == PAIRS else per_level):
            texts = [payload(rng, 2 * i + k) for k in range(count)]
            samples.append(Sample(name, texts, photo(texts, seed=rng.randrange(2**32),
                                                     level=deg, size=size)))
    return samples


class Recording(Pipeline):
    """The pipeline, keeping the last photo's `Outcome` (which stage read what, and the time
    each stage took) that `scan` does not pass on."""

    last = Outcome()

    def run(self, image: Image.Image) -> Outcome:
        self.last = super().run(image)
        return self.last


def run(stages: list[Stage], samples: list[Sample]) -> Result:
    pipeline = Recording(stages)
    result = Result()
    for s in samples:
        cpu, wall = time.thread_time(), time.perf_counter()
        found = scan(s.data, pipeline, MAX_PIXELS, MAX_DECODED_BYTES)
        result.cpu[s.level].append(time.thread_time() - cpu)
        result.wall.append(time.perf_counter() - wall)
        texts = {c.text for c in found.codes}
        result.read[s.level] += sum(t in texts for t in s.texts)
        for text, stage in pipeline.last.by_stage.items():
            if text in s.texts:
                result.by_stage[stage] += 1
        for stage, seconds in pipeline.last.spent.items():
            result.spent[stage] += seconds
            result.ran[stage] += 1
    return result


def quantile(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q * 100) - 1]


def table(title: str, rows: Sequence[str], cols: Sequence[str],
          cell: Callable[[str, str], str], width: int = 12) -> None:
    print(f"{title:12s}" + "".join(f"{c:>{width}s}" for c in cols))
    for row in rows:
        print(f"{row:12s}" + "".join(f"{cell(row, c):>{width}s}" for c in cols))
    print()


def report(results: dict[str, Result], samples: list[Sample]) -> None:
    levels = list(dict.fromkeys(s.level for s in samples))
    names = list(results)
    table("read", levels, names, lambda lv, n: f"{results[n].rate(lv, samples):.1%}")
    speed: dict[str, Callable[[Result], float]] = {
        "images/s": lambda r: len(r.all_cpu()) / sum(r.all_cpu()),
        "mean ms": lambda r: 1000 * statistics.fmean(r.all_cpu()),
        "p50 ms": lambda r: 1000 * quantile(r.all_cpu(), 0.5),
        "p95 ms": lambda r: 1000 * quantile(r.all_cpu(), 0.95),
        "max ms": lambda r: 1000 * max(r.all_cpu()),
        "wall img/s": lambda r: len(r.wall) / sum(r.wall),
    }
    table("per core", list(speed), names, lambda row, n: f"{speed[row](results[n]):.1f}")
    pipe = results["pipeline"]
    print("pipeline CPU ms per photo, by level")
    table("level", levels, ["mean", "p50", "p95", "max"],
          lambda lv, c: f"{_stat(pipe.cpu[lv], c):.1f}", width=9)
    print("pipeline stages (wall ms; 'photos' = photos the stage ran on)")
    print(f"{'stage':28s}{'photos':>8s}{'ms/photo run':>14s}{'ms/all photos':>15s}"
          f"{'codes read':>12s}")
    for stage, seconds in pipe.spent.items():
        print(f"{stage:28s}{pipe.ran[stage]:8d}{1000 * seconds / pipe.ran[stage]:14.2f}"
              f"{1000 * seconds / len(samples):15.2f}{pipe.by_stage[stage]:12d}")
    print()


def _stat(xs: list[float], which: str) -> float:
    if which == "mean":
        return 1000 * statistics.fmean(xs)
    if which == "max":
        return 1000 * max(xs)
    return 1000 * quantile(xs, 0.5 if which == "p50" else 0.95)


def ablation(samples: list[Sample], full: list[Stage]) -> None:
    """The pipeline without each of its extra stages (what each one alone rescues), with
    each measured candidate added (what it would add), and the previous pipeline."""
    levels = list(dict.fromkeys(s.level for s in samples))
    variants = {"pipeline": full} | {f"- {st.prep}": [x for x in full if x is not st]
                                     for st in full[1:]}
    variants |= {name: full + extra for name, extra in candidates().items()}
    variants["previous pipeline"] = previous()
    print("ablation: codes read per level; CPU ms per photo (mean, p95)")
    print(f"{'':28s}" + "".join(f"{lv:>9s}" for lv in levels) + f"{'mean':>8s}{'p95':>8s}")
    for name, stages in variants.items():
        r = run(stages, samples)
        print(f"{name:28s}" + "".join(f"{r.read[lv]:9d}" for lv in levels)
              + f"{1000 * statistics.fmean(r.all_cpu()):8.1f}"
              + f"{1000 * quantile(r.all_cpu(), 0.95):8.1f}", flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-level", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=40, help="photos with two codes")
    parser.add_argument("--size", default="1280x960", help="photo size WxH in pixels")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--ablation", action="store_true",
                        help="also run the pipeline without each extra stage")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    started = time.perf_counter()
    samples = build_set(args.per_level, args.pairs, (w, h), args.seed)
    mb = sum(len(s.data) for s in samples) / len(samples) / 1e6
    print(f"{len(samples)} photos {w}x{h} (JPEG, mean {mb:.2f} MB): {args.per_level} per "
          f"level, {args.pairs} with two codes; seed {args.seed}; generated in "
          f"{time.perf_counter() - started:.0f} s\n")
    configs = {"pyzbar": [Stage("as-is", as_is, ZbarDecoder())],
               "zxing-cpp": [Stage("as-is", as_is, ZxingDecoder())],
               "pipeline": default_stages()}
    report({name: run(stages, samples) for name, stages in configs.items()}, samples)
    if args.ablation:
        ablation(samples, default_stages())


if __name__ == "__main__":
    main()
