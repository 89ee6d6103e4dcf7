"""The bounded decode executor and the job it runs.

Decoding a photo takes 5-150 ms of CPU (Pillow, zxing-cpp and zbar release the GIL while they
work), so it runs on a small thread pool, never on the event loop. Threads rather than
processes: the libraries release the GIL (measured: the loop keeps ticking every few ms
during a decode), the upload need not be pickled across, and memory stays in one place.
Admission is bounded too: at most `max_pending` photos wait or run at once; the next one is
refused at once with 503 `qr_busy`. A place is taken only once the photo's body has arrived
in full (verify/http/body.py bounds its size and time), so slow uploads hold none and cannot keep
other photos waiting; a burst of photos can neither queue unbounded work nor delay lookups,
which never touch this pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from verify.qr import preprocess
from verify.qr.decode import Found, Pipeline, Stage, default_stages
from verify.qr.open import check_decoded_size

T = TypeVar("T")

#: A JPEG much larger than this (long side) is decoded at a reduced DCT scale; 1600 px
#: keeps codes of 2+ mm on an A4 photo above 3 px per module (bench/qr.py `--size`).
WORK_SIDE = 1600


class Busy(Exception):
    """Every decode slot is taken."""


@dataclass(frozen=True, slots=True)
class Scan:
    """What a photo held: the codes, the upright upload size, and how they were read."""

    codes: list[Found]
    width: int
    height: int
    format: str
    stage: str | None
    attempts: int
    seconds: float


def scan(data: bytes, pipeline: Pipeline, max_pixels: int, max_decoded_bytes: int) -> Scan:
    """The whole job, in a worker thread: check what decoding would cost (from the header),
    open the image, decode every code, and map positions back to the uploaded pixels.
    Raises `preprocess.ImageRejected`."""
    check_decoded_size(data, max_decoded_bytes)
    picture = preprocess.open_picture(data, max_pixels=max_pixels, work_side=WORK_SIDE)
    outcome = pipeline.run(picture.image)
    s = picture.scale
    codes = [
        Found(
            c.text,
            (round(c.box[0] * s), round(c.box[1] * s), round(c.box[2] * s), round(c.box[3] * s)),
        )
        for c in outcome.codes
    ]
    return Scan(
        codes,
        picture.width,
        picture.height,
        picture.format,
        outcome.stage,
        outcome.attempts,
        outcome.seconds,
    )


class DecodePool:
    def __init__(self, workers: int, max_pending: int, stages: list[Stage] | None = None) -> None:
        self.pipeline = Pipeline(stages if stages is not None else default_stages())
        self.max_pending = max_pending
        self.pending = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qr-decode")

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of `max_pending` places for the decode, or raise `Busy`."""
        if self.pending >= self.max_pending:
            raise Busy
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def close(self) -> None:
        """Stop taking work, wait (off the loop) for running decodes to end, then let the
        decoders go. They hold zxing-cpp (nanobind) objects, which nanobind reports as
        leaked, a screen of `nanobind: leaked ...` lines, if they are still alive when the
        interpreter exits; and a service froze its start-up heap (`verify.cli.heap`), so a
        reference cycle that holds this pool is never collected: only dropping the
        pipeline here frees them."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        self.pipeline = Pipeline([])
