"""QR decoders behind one small interface, and the pipeline that retries with preprocessing.

Two engines: zxing-cpp (a wheel with no system dependency; locates codes under rotation and
perspective well, reads UTF-8 payloads correctly) and pyzbar (ctypes over the system zbar
library; a different detector that reads some blurred or low-contrast codes zxing-cpp misses).
Both release the GIL while decoding, so the thread pool in `verify/qr/pool.py` really runs
them in parallel and the event loop keeps serving meanwhile.

The pipeline runs stages in order; each stage is a preprocessing step plus a decoder, on
the whole photo or on crops around the places that look like a code (`preprocess.BusyMap`).
Whole-photo stages run until one reads a code; crop stages then look at whatever still looks
like an unread code, so a second code beside an easy one is read too. The stages and their
order were chosen by `bench/qr.py` (cheap stages that read most photos first, rescues on
small crops after); see `default_stages`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from PIL import Image

from verify.qr import preprocess

#: Cap on codes reported per image: each is a verification, spending the caller's budgets.
MAX_CODES = 10


@dataclass(frozen=True, slots=True)
class Found:
    """One code: its text and where it is (x, y, width, height) in working pixels. `read`
    False: a decoder saw a code there but could not decode it (a place to look harder)."""

    text: str
    box: tuple[int, int, int, int]
    read: bool = True


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

    def __init__(self, binarizer: str = "LocalAverage", *, try_downscale: bool = True,
                 try_invert: bool = True, unread: bool = False) -> None:
        import zxingcpp  # imported where used: keeps app import light

        self._zx = zxingcpp
        self._binarizer = getattr(zxingcpp.Binarizer, binarizer)
        self._formats = zxingcpp.barcode_formats_from_str("QRCode,MicroQRCode")
        self._downscale = try_downscale
        self._invert = try_invert  # light-on-dark codes: a second pass when none is found
        self._unread = unread  # also report codes located but not decoded (`read` False)
        self.name = "zxing-cpp" if binarizer == "LocalAverage" else f"zxing-cpp/{binarizer}"

    def decode(self, image: Image.Image) -> list[Found]:
        found = []
        for code in self._zx.read_barcodes(image, formats=self._formats,
                                           binarizer=self._binarizer,
                                           try_downscale=self._downscale,
                                           try_invert=self._invert,
                                           return_errors=self._unread):
            pos = code.position
            corners = [(p.x, p.y) for p in (pos.top_left, pos.top_right, pos.bottom_right,
                                            pos.bottom_left)]
            found.append(Found(code.text, _box(corners)) if code.valid
                         else Found("", _box(corners), read=False))
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
#: Places of a photo the region stages look at, at most (so a photo without any code pays
#: for at most this many crops per region stage).
MAX_REGIONS = 2
#: With a code read, another busy place is worth a look only if it is about as busy as the
#: code read (printed text around a code is sparser than a code), and not nearly empty; and
#: only the first `EXTRA_RUNGS` region stages look at it, at no more than `EXTRA_REGIONS`
#: places: a second code beside a readable one is rarely much worse, so the search for it
#: stays cheap on the typical photo with one code among print.
REGION_RATIO = 0.5
MIN_REGION_SCORE = 30.0
EXTRA_REGIONS = 2
EXTRA_RUNGS = 3


@dataclass(frozen=True, slots=True)
class Stage:
    """Preprocess, then decode. `on` is "photo" (the whole photo; runs only while nothing has
    been read) or "regions" (crops around the places that look like a code and are not read
    yet: the rescue for small, soft codes, and how a second code beside a read one is found).
    Photo stages with the same `prep` name share one prepared image."""

    prep: str
    prepare: Prepare
    decoder: Decoder
    on: Literal["photo", "regions"] = "photo"

    @property
    def name(self) -> str:
        return self.decoder.name if self.prep == "as-is" else f"{self.decoder.name}@{self.prep}"


@dataclass(slots=True)
class Outcome:
    codes: list[Found] = field(default_factory=list)
    stage: str | None = None  # the stages that read codes, "+"-joined in order
    attempts: int = 0
    seconds: float = 0.0
    by_stage: dict[str, str] = field(default_factory=dict)  # code text -> stage that read it
    spent: dict[str, float] = field(default_factory=dict)  # stage (or "locate") -> seconds


class Pipeline:
    """Stages in order. Photo stages run until one reads a code; region stages then look at
    every place that still looks like an unread code (all of them when nothing was read).
    Boxes are mapped back to the input image; the same text read twice is reported once;
    at most `MAX_CODES`."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def run(self, image: Image.Image) -> Outcome:
        started = time.perf_counter()
        out = Outcome()
        codes: dict[str, Found] = {}
        hints: list[Found] = []
        regions: list[preprocess.Region] | None = None
        rungs = EXTRA_RUNGS
        cache: dict[str, tuple[Image.Image, float] | None] = {}
        for stage in self.stages:
            if len(codes) >= MAX_CODES:
                break
            tick = time.perf_counter()
            if stage.on == "photo":
                if codes:  # whole-photo retries only while nothing is read
                    continue
                if stage.prep not in cache:
                    cache[stage.prep] = stage.prepare(image)
                prepared = cache[stage.prep]
                if prepared is None:
                    continue
                out.attempts += 1
                work, factor = prepared
                for code in stage.decoder.decode(work):
                    placed = _place(code, factor, (0, 0))
                    if code.read:
                        _add(codes, placed, stage.name, out)
                    else:
                        hints.append(placed)
            else:
                if regions is None:
                    regions = _regions(image, list(codes.values()), hints)
                    rungs = EXTRA_RUNGS if codes else len(self.stages)
                    out.spent["locate"] = time.perf_counter() - tick
                    tick = time.perf_counter()
                if rungs <= 0 or not regions:
                    continue
                rungs -= 1
                for region in list(regions):
                    window, offset = preprocess.crop_around(image, region.x, region.y)
                    prepared = stage.prepare(window)
                    if prepared is None:
                        continue
                    out.attempts += 1
                    work, factor = prepared
                    read = [_place(c, factor, offset) for c in stage.decoder.decode(work)
                            if c.read]
                    for code in read:
                        _add(codes, code, stage.name, out)
                    if read:
                        regions = [r for r in regions if r is not region
                                   and not any(_inside(r, c.box) for c in read)]
            out.spent[stage.name] = out.spent.get(stage.name, 0.0) + time.perf_counter() - tick
        out.codes = list(codes.values())
        out.seconds = time.perf_counter() - started
        return out


def _place(code: Found, factor: float, offset: tuple[int, int]) -> Found:
    """A box in a prepared (scaled, cropped) image back in the input image's pixels."""
    x, y, w, h = code.box
    return Found(code.text, (round(x / factor) + offset[0], round(y / factor) + offset[1],
                             round(w / factor), round(h / factor)), code.read)


def _add(codes: dict[str, Found], code: Found, stage: str, out: Outcome) -> None:
    if code.text in codes or len(codes) >= MAX_CODES:
        return
    codes[code.text] = code
    out.by_stage[code.text] = stage
    if stage not in (out.stage or "").split("+"):
        out.stage = stage if out.stage is None else f"{out.stage}+{stage}"


def _inside(region: preprocess.Region, box: tuple[int, int, int, int],
            grow: float = 0.25) -> bool:
    x, y, w, h = box
    return (x - grow * w <= region.x <= x + (1 + grow) * w
            and y - grow * h <= region.y <= y + (1 + grow) * h)


def _regions(image: Image.Image, read: list[Found],
             hints: list[Found]) -> list[preprocess.Region]:
    """Where the region stages look, busiest first: the busiest places of the photo and the
    places where a decoder saw a code it could not decode; none inside a code already read
    nor within half a crop of a place already chosen. With codes read, only places about as
    busy as the least busy code read, `EXTRA_REGIONS` at most."""
    busy = preprocess.BusyMap(image)
    floor = MIN_REGION_SCORE
    if read:
        floor = max(floor, REGION_RATIO * min(_score_of(busy, c.box) for c in read))
    small, large = 8, max(image.size) // 2  # zxing also reports implausible boxes
    places = busy.peaks(MAX_REGIONS + len(read)) + [
        preprocess.Region(x + w // 2, y + h // 2, busy.at(x + w / 2, y + h / 2))
        for x, y, w, h in (h.box for h in hints) if small <= min(w, h) and max(w, h) <= large]
    near = preprocess.crop_half(image) // 2
    chosen: list[preprocess.Region] = []
    for place in sorted(places, key=lambda r: -r.score):
        if place.score < floor or any(_inside(place, c.box) for c in read):
            continue
        if any(abs(place.x - c.x) < near and abs(place.y - c.y) < near for c in chosen):
            continue
        chosen.append(place)
    return chosen[:EXTRA_REGIONS if read else MAX_REGIONS]


def _score_of(busy: preprocess.BusyMap, box: tuple[int, int, int, int]) -> float:
    """How busy a read code is: the busiest of its centre and the centres of its quarters."""
    x, y, w, h = box
    return max(busy.at(x + fx * w, y + fy * h) for fx, fy in
               ((0.5, 0.5), (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)))


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


def deblurred(sigma: float, noise: float, factor: float) -> Prepare:
    """Wiener-deblur a crop (a gaussian of `sigma` px; `noise`: see `preprocess.deblur`),
    then upscale it."""
    def prepare(image: Image.Image) -> tuple[Image.Image, float] | None:
        return preprocess.upscale(preprocess.deblur(image, sigma, noise), factor), factor
    return prepare


def binarised(image: Image.Image) -> tuple[Image.Image, float] | None:
    return preprocess.binarise(image), 1.0


def default_stages() -> list[Stage]:
    """The order `bench/qr.py` measured best (the figures:
    bench/README.md#benchqr-qr-decoding-of-phone-photos).
    zxing-cpp on the photo as uploaded reads every clean to moderate photo and ~78% of the
    hard ones in ~4 ms, and says where it saw a code it could not decode. Only when
    something is left (nothing read, or another place as busy as a code read) do the region
    stages run, on crops of ~400x400 around those places rather than on the whole photo:
    upscaled x2, x3, then Wiener-deblurred for three blur widths at two scales (the blur of
    a photo is unknown, and zxing-cpp is sensitive enough that each rung reads codes the
    others miss), then x4 for the smallest codes, each rung only for the places still
    unread. A photo without any code
    pays ~1 ms to locate plus at most `MAX_REGIONS` crops per rung."""
    zxing = ZxingDecoder(try_invert=False, unread=True)  # inverted codes: left to the crops
    crops = ZxingDecoder(try_downscale=False)
    return [
        Stage("as-is", as_is, zxing),
        Stage("crop-x2", enlarge(2.0), crops, "regions"),
        Stage("crop-x3", enlarge(3.0), crops, "regions"),
        Stage("crop-deblur1.0-x2", deblurred(1.0, 0.05, 2.0), crops, "regions"),
        Stage("crop-deblur1.4-x2", deblurred(1.4, 0.05, 2.0), crops, "regions"),
        Stage("crop-deblur1.4-x3", deblurred(1.4, 0.02, 3.0), crops, "regions"),
        Stage("crop-deblur1.7-x3", deblurred(1.7, 0.05, 3.0), crops, "regions"),
        Stage("crop-x4", enlarge(4.0), crops, "regions"),
    ]


def single(decoder: Decoder) -> Pipeline:
    """One decoder on the image as uploaded: the baseline the benchmark compares with."""
    return Pipeline([Stage("as-is", as_is, decoder)])
