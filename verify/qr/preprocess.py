"""Turning uploaded bytes into a greyscale picture a QR decoder can work on, safely.

Safety first: only JPEG, PNG, WebP and HEIF/HEIC are opened (`formats=` keeps Pillow's other
decoders, and their bugs, out of reach); the pixel count in the header is checked before a
single pixel is decoded, so a decompression bomb or a 100-megapixel photo costs nothing;
`Image.MAX_IMAGE_PIXELS` is pinned as a second line (`pin_pixel_limit`). A truncated file is
an error, never a half-grey picture decoded in silence.

Then the photo is put the right way up (EXIF orientation), decoded straight to greyscale,
and, for JPEG, at a reduced scale when it is far larger than decoding needs (`draft`: the
DCT is decoded at 1/2, 1/4 or 1/8, which is several times faster and smaller in memory than
decoding in full and resizing); other formats are box-reduced the same way. `BusyMap` finds
the places that look like a code, `crop_around` cuts a window there, and `upscale` and
`deblur` prepare it for another try (`verify/qr/decode.py`); which retries, and in which
order, was chosen by `bench/qr.py`.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

#: Pillow decoders tried. Phones' multi-picture JPEGs open through the JPEG decoder (their
#: format then reads "MPO"); HEIF/HEIC is there once pillow-heif is registered.
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
_ORIENTATION = 0x0112
_QUARTER_TURNS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_heif_lock = threading.Lock()
_heif_state: list[bool] = []


class ImageRejected(Exception):
    """An upload that is not a usable image; `code` and `status` go to the error envelope."""

    def __init__(self, status: int, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details)


@dataclass(frozen=True, slots=True)
class Picture:
    """The upright greyscale picture, its size as uploaded (after EXIF rotation), and the
    factor from its pixels back to those of the upload."""

    image: Image.Image
    width: int
    height: int
    format: str
    scale: float  # uploaded pixels per working pixel (> 1 after a draft decode)


def heif_available() -> bool:
    """Register the pillow-heif opener once; False when the plugin is not installed."""
    with _heif_lock:
        if not _heif_state:
            try:
                import pillow_heif  # optional plugin, registered lazily
            except ImportError:
                Image.init()
                _heif_state.append(False)
            else:
                pillow_heif.register_heif_opener()
                Image.init()  # load the WebP decoder too, so `formats=` can name it
                _heif_state.append(True)
        return _heif_state[0]


def pin_pixel_limit(max_pixels: int) -> None:
    """Pillow's own bomb check, pinned so behaviour does not depend on its version default.
    Our explicit check in `open_picture` runs first; this guards any other path."""
    Image.MAX_IMAGE_PIXELS = max_pixels


def open_picture(data: bytes, *, max_pixels: int, work_side: int) -> Picture:
    """Open, check, orient and greyscale an upload. `work_side`: a JPEG whose long side
    exceeds twice this is decoded at a reduced DCT scale."""
    formats = FORMATS if heif_available() else FORMATS[:-1]
    try:
        img = Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(None, max_pixels) from None
    except UnidentifiedImageError:
        raise ImageRejected(400, "not_an_image", "the upload is not a JPEG, PNG, WebP or HEIC "
                            "image", accepted=["JPEG", "PNG", "WebP", "HEIC"]) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(400, "corrupt_image", "the image header cannot be read",
                            reason=str(exc)[:200]) from None
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise _too_large((width, height), max_pixels)
        fmt = img.format or "unknown"
        scale = 1.0
        if fmt in ("JPEG", "MPO"):
            # libjpeg hands over the luma plane as it is (no colour conversion: half the
            # decode time of a 1280x960 photo), and far larger photos at a reduced DCT scale.
            side = min(max(width, height), work_side if max(width, height) > 2 * work_side
                       else max(width, height))
            img.draft("L", (width * side // max(width, height),
                            height * side // max(width, height)))
            scale = width / img.size[0]
        try:
            if img.getexif().get(_ORIENTATION, 1) in _QUARTER_TURNS:
                width, height = height, width
            # Greyscale first, then rotate: a rotation of the decoded RGB(A) picture would
            # be a second full-size copy at 4 bytes a pixel (issue 15: +440 MB per upload).
            grey = ImageOps.exif_transpose(img.convert("L"))
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageRejected(400, "truncated_image", "the image data is truncated or "
                                "corrupt", reason=str(exc)[:200]) from None
    factor = max(grey.size) // work_side
    if factor >= 2:  # a huge PNG/WebP/HEIC: box-reduce it as the JPEG draft does
        grey = grey.reduce(factor)
        scale *= factor
    return Picture(grey, width, height, fmt, scale)


def _too_large(size: tuple[int, int] | None, max_pixels: int) -> ImageRejected:
    details: dict[str, object] = {"max_pixels": max_pixels}
    if size is not None:
        details |= {"width": size[0], "height": size[1]}
    return ImageRejected(413, "image_too_large", f"the image has more than {max_pixels} "
                         "pixels (or claims to): send a smaller photo", **details)


def upscale(img: Image.Image, factor: float) -> Image.Image:
    """Enlarge small codes: decoders need about 3 pixels per module to find patterns."""
    size = (round(img.width * factor), round(img.height * factor))
    return img.resize(size, Image.Resampling.BICUBIC)


def sharpened_upscale(img: Image.Image, factor: float) -> Image.Image:
    """Upscale, then an unsharp mask scaled to the new module size (for soft small codes)."""
    big = upscale(img, factor)
    return big.filter(ImageFilter.UnsharpMask(radius=factor, percent=120, threshold=2))


def deblur(img: Image.Image, sigma: float, noise: float = 0.02) -> Image.Image:
    """Wiener deconvolution with a gaussian of `sigma` pixels: undoes defocus and shake of
    about that width. `noise` (noise-to-signal power) keeps it from amplifying grain. Meant
    for crops (an FFT of the whole photo would cost more than the rest of the pipeline)."""
    pixels = np.asarray(img, dtype=np.float32)
    fy = np.fft.fftfreq(pixels.shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(pixels.shape[1]).astype(np.float32)[None, :]
    otf = np.exp(np.float32(-2 * (np.pi * sigma) ** 2) * (fx * fx + fy * fy))
    mean = float(pixels.mean())
    spectrum = np.fft.rfft2(pixels - mean) * (otf / (otf * otf + np.float32(noise)))
    sharp = np.fft.irfft2(spectrum, s=pixels.shape) + mean
    return Image.fromarray(np.clip(sharp, 0, 255).astype(np.uint8))


@dataclass(frozen=True, slots=True)
class Region:
    """A place that looks like a code: its centre in working pixels and how strongly
    (0-255: the share of its neighbourhood that is busy with sharp light-dark edges)."""

    x: int
    y: int
    score: float


#: The locator works on the photo reduced by this much (a 1280x960 photo: 320x240 cells).
_LOCATE_REDUCE = 4


class BusyMap:
    """Where a photo looks like a code. A QR code is a square packed with light-dark edges in
    both directions; printed text is sparser, and a paper edge or a glare spot is one line.
    Each cell holds the share (0-255) of its neighbourhood busy with edges that are strong
    for the local light, so dark sides and glare count alike. ~1 ms on 1280x960: the cheap
    guide that lets the rescue stages work on small crops instead of the whole photo."""

    def __init__(self, img: Image.Image) -> None:
        small = img.reduce(_LOCATE_REDUCE) if min(img.size) >= 16 * _LOCATE_REDUCE else img
        edges = ImageChops.lighter(
            ImageChops.difference(small, ImageChops.offset(small, 1, 0)),
            ImageChops.difference(small, ImageChops.offset(small, 0, 1)))
        local = small.reduce(4).resize(small.size, Image.Resampling.BILINEAR)
        busy = (np.asarray(edges, dtype=np.float32)
                > 0.12 * (np.asarray(local, dtype=np.float32) + 10)).astype(np.uint8)
        busy[:2, :] = busy[-2:, :] = 0  # offset() wraps around: the frame's edges are no ink
        busy[:, :2] = busy[:, -2:] = 0
        # Cells of 4x4 (16x16 photo pixels), then the share over 5x5 cells (~80 px).
        cells = Image.fromarray(busy * 255).reduce(4).filter(ImageFilter.BoxBlur(2))
        self._density = np.array(cells, dtype=np.float32)
        self._r = img.width / cells.width
        self._apart = max(1, round(crop_half(img) / (2 * self._r)))

    def at(self, x: float, y: float) -> float:
        """The score of the cell under (x, y) in working pixels."""
        h, w = self._density.shape
        return float(self._density[min(h - 1, max(0, int(y / self._r))),
                                   min(w - 1, max(0, int(x / self._r)))])

    def peaks(self, count: int) -> list[Region]:
        """The `count` busiest places, busiest first, at least half a crop window apart."""
        density = self._density.copy()
        found = []
        for _ in range(count):
            y, x = np.unravel_index(int(np.argmax(density)), density.shape)
            score = float(density[y, x])
            if score <= 0:
                break
            found.append(Region(round((x + 0.5) * self._r), round((y + 0.5) * self._r), score))
            a = self._apart
            density[max(0, y - a):y + a, max(0, x - a):x + a] = 0
        return found


def crop_half(img: Image.Image) -> int:
    """Half the side of the window cropped around a region: room for a code of up to
    about 40% of the photo's long side, turned 45 degrees."""
    return max(96, round(0.16 * max(img.size)))


def crop_around(img: Image.Image, x: int, y: int) -> tuple[Image.Image, tuple[int, int]]:
    """The window around (x, y), shifted to stay inside the photo, and its top-left."""
    half = crop_half(img)
    x0 = min(max(0, x - half), max(0, img.width - 2 * half))
    y0 = min(max(0, y - half), max(0, img.height - 2 * half))
    return img.crop((x0, y0, min(img.width, x0 + 2 * half), min(img.height, y0 + 2 * half))), (
        x0, y0)


def binarise(img: Image.Image, radius: int = 12, offset: int = 6) -> Image.Image:
    """Local-mean threshold: ink is what is darker than its neighbourhood by `offset`.
    Survives uneven light that defeats one global threshold."""
    local = img.filter(ImageFilter.BoxBlur(radius))
    darker = ImageChops.subtract(local, img)
    return darker.point(lambda v: 0 if v > offset else 255)
