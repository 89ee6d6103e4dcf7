"""QR decoding benchmark: decode rate per degradation level and images/s, for pyzbar alone,
zxing-cpp alone and the service's pipeline, on one seeded set of generated photos.

    ./run bench-qr [--per-level 100] [--size 1280x960] [--seed 6]

Each photo holds one invoice QR (Chinese QR text, our IVQR1 text or a Vietnamese lookup URL,
alternating) degraded as `tests/verify/qr/images.py` LEVELS say: rotation, perspective,
blur, noise, low contrast, uneven light, JPEG quality 25-70, small codes, printed clutter.
A photo counts as read when the exact text comes back. Times are wall time on one thread
(= one core) for the whole job the endpoint runs: open + EXIF + greyscale + decode
(`verify.qr.pool.scan`), so images/s is per core. The pipeline's rescue table shows which
stage read the photos the first stage missed, which is how the stage order was chosen.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass

from tests.verify.qr.images import LEVELS, photo
from verify.qr.decode import Pipeline, ZbarDecoder, ZxingDecoder, default_stages, single
from verify.qr.pool import scan

MAX_PIXELS = 50_000_000


@dataclass
class Sample:
    level: str
    text: str
    data: bytes


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


def build_set(per_level: int, size: tuple[int, int], seed: int) -> list[Sample]:
    rng = random.Random(seed)
    samples = []
    for level in LEVELS:
        for i in range(per_level):
            text = payload(rng, i)
            samples.append(Sample(level, text, photo([text], seed=rng.randrange(2**32),
                                                     level=level, size=size)))
    return samples


def run(pipeline: Pipeline, samples: list[Sample]) -> tuple[dict[str, float], list[float],
                                                              Counter[str]]:
    read: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    seconds = []
    for s in samples:
        started = time.perf_counter()
        result = scan(s.data, pipeline, MAX_PIXELS)
        seconds.append(time.perf_counter() - started)
        if any(c.text == s.text for c in result.codes):
            read[s.level] += 1
            stages[result.stage or "?"] += 1
    per_level = Counter(s.level for s in samples)
    return {lv: read[lv] / per_level[lv] for lv in per_level}, seconds, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-level", type=int, default=100)
    parser.add_argument("--size", default="1280x960", help="photo size WxH in pixels")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    started = time.perf_counter()
    samples = build_set(args.per_level, (w, h), args.seed)
    mb = sum(len(s.data) for s in samples) / len(samples) / 1e6
    print(f"{len(samples)} photos {w}x{h} (JPEG, mean {mb:.2f} MB), {args.per_level} per "
          f"level, seed {args.seed}; generated in {time.perf_counter() - started:.1f} s\n")
    configs = {"pyzbar": single(ZbarDecoder()), "zxing-cpp": single(ZxingDecoder()),
               "pipeline": Pipeline(default_stages())}
    results = {name: run(p, samples) for name, p in configs.items()}
    print(f"{'level':10s}" + "".join(f"{name:>12s}" for name in configs))
    for level in LEVELS:
        print(f"{level:10s}" + "".join(f"{results[n][0][level]:>12.1%}" for n in configs))
    print()
    print(f"{'per core':10s}" + "".join(f"{name:>12s}" for name in configs))
    for label, fn in (("images/s", lambda xs: len(xs) / sum(xs)),
                      ("mean ms", lambda xs: 1000 * statistics.fmean(xs)),
                      ("p95 ms", lambda xs: 1000 * statistics.quantiles(xs, n=20)[18]),
                      ("max ms", lambda xs: 1000 * max(xs))):
        print(f"{label:10s}" + "".join(f"{fn(results[n][1]):>12.1f}" for n in configs))
    print("\npipeline: photos read, by the stage that read them")
    for stage, count in results["pipeline"][2].most_common():
        print(f"  {stage:32s} {count:5d}")


if __name__ == "__main__":
    main()
