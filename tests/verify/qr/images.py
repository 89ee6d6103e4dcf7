"""Photo-like QR images made with qrcode + Pillow, for the QR tests and `bench/qr.py`.

A scanner photo is a code printed on paper among other print, taken at an angle, in uneven
light, a little out of focus, noisy and JPEG-compressed. `photo()` builds such a picture from
a seed and a `Degradation` (how much of each), so a failure can be reproduced exactly.
`LEVELS` are the graded degradation sets the benchmark reports on. Everything is drawn at
the final resolution with Pillow only (no numpy), so generating a test image costs a few ms.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

import qrcode
import qrcode.constants
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

EcLevel = Literal["L", "M", "Q", "H"]
_EC = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
       "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}
PAPER = 235


def qr_modules(text: str, ec: EcLevel = "M", border: int = 4) -> Image.Image:
    """The code at one pixel per module (mode L), quiet zone included."""
    code = qrcode.QRCode(error_correction=_EC[ec], box_size=1, border=border)
    code.add_data(text.encode("utf-8"))
    code.make(fit=True)
    modules = code.get_matrix()
    img = Image.new("L", (len(modules[0]), len(modules)), 255)
    img.putdata([0 if cell else 255 for row in modules for cell in row])
    return img


def qr_png(text: str, box: int = 8, ec: EcLevel = "M") -> bytes:
    """A clean scan: what a PDF invoice's QR looks like when exported."""
    img = qr_modules(text, ec)
    return encode(img.resize((img.width * box, img.height * box), Image.Resampling.NEAREST),
                  "PNG")


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90, **params: object) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=quality, **params)
    else:
        img.save(out, fmt, **params)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Degradation:
    """How hard a photo is. Ranges are (low, high); the seed picks a value in each."""

    module_px: tuple[float, float] = (6.0, 8.0)  # printed module size in the photo, pixels
    rotation: float = 0.0  # max |angle| in degrees
    perspective: float = 0.0  # max corner shift as a fraction of the code size
    blur: tuple[float, float] = (0.0, 0.0)  # gaussian radius, pixels
    noise: float = 0.0  # gaussian sigma, grey levels
    contrast: tuple[float, float] = (1.0, 1.0)  # ink-to-paper contrast kept
    light: float = 0.0  # depth of the light gradient (0 = even)
    jpeg: tuple[int, int] = (90, 90)
    clutter: int = 0  # lines of printed text and boxes around the code


LEVELS: dict[str, Degradation] = {
    "clean": Degradation(),
    "mild": Degradation(module_px=(4.0, 6.0), rotation=15, perspective=0.05, blur=(0.0, 0.6),
                        noise=3, contrast=(0.7, 0.9), light=0.2, jpeg=(60, 70), clutter=6),
    "moderate": Degradation(module_px=(3.5, 5.0), rotation=45, perspective=0.1,
                            blur=(0.4, 1.0), noise=6, contrast=(0.45, 0.7), light=0.4,
                            jpeg=(35, 60), clutter=12),
    "hard": Degradation(module_px=(3.0, 4.0), rotation=180, perspective=0.15, blur=(0.7, 1.3),
                        noise=8, contrast=(0.35, 0.55), light=0.5, jpeg=(25, 40), clutter=20),
}


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (8x8 perspective systems)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def perspective_coeffs(dst: list[tuple[float, float]],
                       src: list[tuple[float, float]]) -> tuple[float, ...]:
    """Pillow's PERSPECTIVE data mapping output points `dst` to input points `src`."""
    rows: list[list[float]] = []
    rhs: list[float] = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(_solve(rows, rhs))


def _clutter(draw: ImageDraw.ImageDraw, size: tuple[int, int], avoid: tuple[int, int, int, int],
             count: int, rng: random.Random) -> None:
    words = ["HÓA ĐƠN GIÁ TRỊ GIA TĂNG", "发票代码 044031900111", "Tổng tiền: 1.100.000",
             "价税合计 ¥106.00", "Mã tra cứu: X7K2P", "ký hiệu C22TAA số 0000123",
             "校验码 12345 67890", "Người mua hàng", "开票日期 2024年11月14日"]
    x0, y0, x1, y1 = avoid
    for _ in range(count * 4):
        if count <= 0:
            break
        font = ImageFont.load_default(size=rng.randint(12, 30))
        x, y = rng.randint(0, size[0] - 50), rng.randint(0, size[1] - 20)
        if x0 - 400 < x < x1 and y0 - 30 < y < y1:
            continue  # keep the quiet zone: clutter *around* the code, not on it
        ink = rng.randint(20, 110)
        if rng.random() < 0.7:
            draw.text((x, y), rng.choice(words), fill=ink, font=font)
        else:
            draw.rectangle((x, y, x + rng.randint(40, 300), y + rng.randint(2, 60)),
                           outline=ink, width=rng.randint(1, 3))
        count -= 1


def photo(texts: list[str], *, seed: int, level: Degradation | str = "clean",
          size: tuple[int, int] = (1280, 960), fmt: str = "JPEG", ec: EcLevel = "M") -> bytes:
    """A photo of one or more printed codes, degraded as `level` says, encoded as `fmt`."""
    deg = LEVELS[level] if isinstance(level, str) else level
    rng = random.Random(seed)
    scene = Image.new("L", size, PAPER)
    draw = ImageDraw.Draw(scene)
    slots = len(texts)
    boxes: list[tuple[int, int, int, int]] = []
    for i, text in enumerate(texts):
        modules = qr_modules(text, ec)
        px = rng.uniform(*deg.module_px)
        side = max(modules.width, round(modules.width * px))
        code = modules.resize((side, side), Image.Resampling.BOX)
        angle = rng.uniform(-deg.rotation, deg.rotation)
        code = code.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        # Keep the whole code in the frame even after the perspective shift moves it:
        # a code cut by the photo's edge is unreadable by anyone, not a hard case.
        margin = round(deg.perspective * min(size) * 1.5) + 16
        cell_w = size[0] // slots
        free_x = max(0, cell_w - code.width - 2 * margin)
        free_y = max(0, size[1] - code.height - 2 * margin)
        x = i * cell_w + margin + rng.randint(0, free_x)
        y = margin + rng.randint(free_y // 4, max(free_y // 4, 3 * free_y // 4))
        scene.paste(ImageChops.darker(code, Image.new("L", code.size, PAPER)), (x, y))
        boxes.append((x, y, x + code.width, y + code.height))
    for box in boxes:
        _clutter(draw, size, box, deg.clutter // max(1, len(boxes)), rng)
    scene = _camera(scene, deg, rng)
    return encode(scene, fmt, quality=rng.randint(*deg.jpeg)) if fmt == "JPEG" else encode(
        scene, fmt)


def _camera(scene: Image.Image, deg: Degradation, rng: random.Random) -> Image.Image:
    """What the phone adds: perspective, focus, light, contrast, sensor noise."""
    w, h = scene.size
    if deg.perspective:
        s = deg.perspective * min(w, h)
        corners = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
        moved = [(x + rng.uniform(-s, s), y + rng.uniform(-s, s)) for x, y in corners]
        scene = scene.transform(scene.size, Image.Transform.PERSPECTIVE,
                                perspective_coeffs(corners, moved), Image.Resampling.BICUBIC,
                                fillcolor=PAPER - 40)
    radius = rng.uniform(*deg.blur)
    if radius > 0.05:
        scene = scene.filter(ImageFilter.GaussianBlur(radius))
    keep = rng.uniform(*deg.contrast)
    if keep < 1.0:
        floor = PAPER * (1 - keep)
        scene = scene.point(lambda v: round(floor + v * keep))
    if deg.light:
        # Rotate the 256-px ramp, then keep its centre (no corners filled in): a smooth
        # light fall-off in a random direction.
        ramp = Image.linear_gradient("L").rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR)
        gradient = ramp.crop((38, 38, 218, 218)).resize(scene.size, Image.Resampling.BILINEAR)
        dark = round(255 * (1 - deg.light))
        scene = ImageChops.multiply(scene, gradient.point(
            lambda v: dark + v * (255 - dark) // 255))
    if deg.noise:
        noise = Image.effect_noise(scene.size, deg.noise)
        scene = ImageChops.add(scene, noise, 1.0, -128)
    return scene


def two_code_photo(first: str, second: str, *, seed: int = 7) -> bytes:
    return photo([first, second], seed=seed, level=Degradation(module_px=(5.0, 6.0),
                                                               rotation=8, clutter=4),
                 size=(1600, 900))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` but carries one empty data chunk: a
    decompression bomb as far as any decoder that trusts the header is concerned."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def blank_png(width: int, height: int) -> bytes:
    """A valid, all-white greyscale PNG of any size, built row by row so that even 100
    megapixels cost a few hundred kilobytes of memory, never the decoded size."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * width
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    idat = b"".join(parts)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def with_exif_orientation(img: Image.Image, orientation: int, quality: int = 90) -> bytes:
    """A JPEG whose pixels are stored as `img` and whose EXIF says how to turn them."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=quality, exif=exif.tobytes())
