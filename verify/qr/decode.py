"""QR decoders behind one small interface, and the pipeline that retries with preprocessing.

Two engines: zxing-cpp (a wheel with no system dependency; locates codes under rotation and
perspective well, reads UTF-8 payloads correctly) and pyzbar (ctypes over the system zbar
library; a different detector that reads some blurred or low-contrast codes zxing-cpp misses).
Both release the GIL while decoding, so the thread pool in `verify/qr/pool.py` really runs
them in parallel and the event loop keeps serving meanwhile.

The pipeline runs stages in order and stops at the first stage that finds any code; each
stage is a preprocessing step plus a decoder. The order was chosen by `bench/qr.py` (cheap
stages that read most photos first, expensive rescue stages last); see `DEFAULT_STAGES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from verify.qr import preprocess

#: Cap on codes reported per image: each is a verification, spending the caller's budgets.
MAX_CODES = 10


@dataclass(frozen=True, slots=True)
class Found:
    """One decoded code: its text and where it is (x, y, width, height) in working pixels."""

    text: str
    box: tuple[int, int, int, int]


class Decoder(Protocol):
    name: str

    def decode(self, image: Image.Image) -> list[Found]:
        """Every QR code readable in a greyscale image (may be empty)."""
        ...


def _box(points: Sequence[tuple[float, float]]) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (round(min(xs)), round(min(ys)), round(max(xs) - min(xs)), round(max(ys) - min(ys)))


class ZxingDecoder:
    """zxing-cpp. `binarizer` is `LocalAverage` (its default: robust to uneven light) or
    `GlobalHistogram` (one threshold: better on low-contrast, noisy, evenly lit codes)."""

    def __init__(self, binarizer: str = "LocalAverage", *, try_downscale: bool = True) -> None:
        import zxingcpp  # imported where used: keeps app import light

        self._zx = zxingcpp
        self._binarizer = getattr(zxingcpp.Binarizer, binarizer)
        self._formats = zxingcpp.barcode_formats_from_str("QRCode,MicroQRCode")
        self._downscale = try_downscale
        self.name = "zxing-cpp" if binarizer == "LocalAverage" else f"zxing-cpp/{binarizer}"

    def decode(self, image: Image.Image) -> list[Found]:
        found = []
        for code in self._zx.read_barcodes(image, formats=self._formats,
                                           binarizer=self._binarizer,
                                           try_downscale=self._downscale):
            if not code.valid:
                continue
            pos = code.position
            corners = [(p.x, p.y) for p in (pos.top_left, pos.top_right, pos.bottom_right,
                                            pos.bottom_left)]
            found.append(Found(code.text, _box(corners)))
        return found


def _fix_zbar_text(data: bytes) -> str:
    """zbar guesses a QR's byte-mode charset and re-encodes to UTF-8, often wrongly for UTF-8
    payloads (Vietnamese, Chinese): it takes them for Latin-1 or Shift-JIS. Undo either."""
    text = data.decode("utf-8", errors="replace")
    if text.isascii():
        return text
    for charset in ("latin-1", "shift_jis"):
        try:
            return text.encode(charset).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
    return text


class ZbarDecoder:
    """pyzbar over libzbar0 (installed by `./run`)."""

    name = "pyzbar"

    def __init__(self) -> None:
        from pyzbar import pyzbar  # type: ignore[import-untyped]  # loads libzbar

        self._zbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(self, image: Image.Image) -> list[Found]:
        return [Found(_fix_zbar_text(code.data), _box([(p.x, p.y) for p in code.polygon]))
                for code in self._zbar.decode(image, symbols=self._symbols)]


#: Returns the prepared image and its scale relative to the input, or None to skip the stage.
Prepare = Callable[[Image.Image], tuple[Image.Image, float] | None]
#: Upscaling never makes a working image larger than this (memory and time stay bounded).
MAX_WORK_PIXELS = 12_000_000


@dataclass(frozen=True, slots=True)
class Stage:
    """Preprocess, then decode. Stages with the same `prep` name share one prepared image
    (the pipeline prepares it once per photo)."""

    prep: str
    prepare: Prepare
    decoder: Decoder

    @property
    def name(self) -> str:
        return self.decoder.name if self.prep == "as-is" else f"{self.decoder.name}@{self.prep}"


@dataclass(slots=True)
class Outcome:
    codes: list[Found] = field(default_factory=list)
    stage: str | None = None
    attempts: int = 0
    seconds: float = 0.0


class Pipeline:
    """Stages in order; the first that reads anything wins. Boxes are mapped back to the
    input image; the same text read twice is reported once; at most `MAX_CODES`."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def run(self, image: Image.Image) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome()
        cache: dict[str, tuple[Image.Image, float] | None] = {}
        for stage in self.stages:
            if stage.prep not in cache:
                cache[stage.prep] = stage.prepare(image)
            prepared = cache[stage.prep]
            if prepared is None:
                continue
            outcome.attempts += 1
            work, factor = prepared
            found = stage.decoder.decode(work)
            if found:
                outcome.codes = _unique(found, factor)
                outcome.stage = stage.name
                break
        outcome.seconds = time.perf_counter() - started
        return outcome


def _unique(found: list[Found], factor: float) -> list[Found]:
    seen: dict[str, Found] = {}
    for code in found:
        if code.text not in seen and len(seen) < MAX_CODES:
            x, y, w, h = code.box
            seen[code.text] = Found(code.text, (round(x / factor), round(y / factor),
                                                round(w / factor), round(h / factor)))
    return list(seen.values())


def as_is(image: Image.Image) -> tuple[Image.Image, float] | None:
    return image, 1.0


def enlarge(factor: float) -> Prepare:
    """Upscale small codes (capped at `MAX_WORK_PIXELS`; skipped when the cap leaves
    nothing to gain)."""
    def prepare(image: Image.Image) -> tuple[Image.Image, float] | None:
        f = min(factor, (MAX_WORK_PIXELS / (image.width * image.height)) ** 0.5)
        if f < 1.2:
            return None
        return preprocess.upscale(image, f), f
    return prepare


def binarised(image: Image.Image) -> tuple[Image.Image, float] | None:
    return preprocess.binarise(image), 1.0


def default_stages() -> list[Stage]:
    """The order `bench/qr.py` measured best (README "QR decoding" has the figures).
    zxing-cpp on the photo as uploaded reads every clean, mild and moderate photo and 80% of
    the hardest in ~13 ms; small, blurred codes are then rescued by upscaling (x1.5, then
    x2: +14 points on the hardest level); last, pyzbar's different detector on a local-mean
    binarised image, which read the odd photo in poor light that zxing-cpp missed in the
    exploratory runs. Measured and left out: contrast stretch, equalisation, sharpening,
    median denoise, x2.5/x3 upscales and binarised x2 (no or one rescue per 100 hard photos
    for 30-100 ms each). A photo with no code pays for all four stages: ~150 ms at 1.2 MP,
    bounded by `MAX_WORK_PIXELS`."""
    zxing = ZxingDecoder()
    return [
        Stage("as-is", as_is, zxing),
        Stage("x1.5", enlarge(1.5), zxing),
        Stage("x2", enlarge(2.0), zxing),
        Stage("binarised", binarised, ZbarDecoder()),
    ]


def single(decoder: Decoder) -> Pipeline:
    """One decoder on the image as uploaded: the baseline the benchmark compares with."""
    return Pipeline([Stage("as-is", as_is, decoder)])
