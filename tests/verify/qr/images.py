"""Photo-like QR images made with qrcode + Pillow, for the QR tests and `bench/qr.py`.

A scanner photo is a code printed on paper among other print, taken at an angle, in uneven
light, a little out of focus, noisy and JPEG-compressed. `photo()` builds such a picture from
a seed and a `Degradation` (how much of each), so a failure can be reproduced exactly.
`LEVELS` are the graded degradation sets the benchmark reports on. The first four are drawn
at the final resolution with Pillow (a few ms a photo); `phone`, the hard phone-like level,
models the camera (`Phone`) at the sensor's resolution with numpy (~0.3 s a photo).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
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
class Phone:
    """What a phone camera and the upload path add, modelled on the physics rather than as
    image filters. The scene is drawn at the sensor's resolution (`Degradation.module_px` is
    the module size there), then, in this order: a slight paper curl; a code shown on a
    screen (its pixel grid, sampled by the sensor, gives moire); vignetting and glare; the
    lens (defocus as a disk kernel, hand shake as a line kernel, or a plain gaussian);
    sensor noise (Poisson shot noise plus gaussian read noise); the camera's own JPEG; the
    upload shrunk by `shrink` to the final size; and the app's JPEG (`Degradation.jpeg`),
    so every upload is compressed twice. Probabilities are per photo."""

    shrink: tuple[float, float] = (1.0, 1.0)  # final size / sensor size
    defocus: tuple[float, float] = (0.0, 0.0)  # disk radius, sensor pixels
    motion: tuple[float, float] = (0.0, 0.0)  # line length, sensor pixels
    full_well: tuple[float, float] = (0.0, 0.0)  # photons at white (0: no shot noise)
    read_noise: float = 0.0  # gaussian sigma, grey levels
    vignette: float = 0.0  # max light lost in the corners
    glare: float = 0.0  # probability of a glare spot
    screen: float = 0.0  # probability the code is shown on a screen
    curl: float = 0.0  # max bend of the paper, fraction of the height
    camera_jpeg: tuple[int, int] = (92, 92)


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
    phone: Phone | None = None  # the physically modelled camera (see `Phone`)


LEVELS: dict[str, Degradation] = {
    "clean": Degradation(),
    "mild": Degradation(module_px=(4.0, 6.0), rotation=15, perspective=0.05, blur=(0.0, 0.6),
                        noise=3, contrast=(0.7, 0.9), light=0.2, jpeg=(60, 70), clutter=6),
    "moderate": Degradation(module_px=(3.5, 5.0), rotation=45, perspective=0.1,
                            blur=(0.4, 1.0), noise=6, contrast=(0.45, 0.7), light=0.4,
                            jpeg=(35, 60), clutter=12),
    "hard": Degradation(module_px=(3.0, 4.0), rotation=180, perspective=0.15, blur=(0.7, 1.3),
                        noise=8, contrast=(0.35, 0.55), light=0.5, jpeg=(25, 40), clutter=20),
    # The hard phone-like photos of issue 20: codes of 1.5-4.5 px per module once the photo
    # is shrunk to 0.5-1.0, contrast down to 0.45 with a dark side, up to 40 degrees of
    # rotation and a strong perspective, print around the code, and every `Phone` effect.
    # Blur up to 2.4 px: a defocus disk of radius 2.4, or a gaussian of the same spread
    # (sigma 1.2), or a shake of 4.5 px. Module size and blur are in sensor pixels (before
    # the shrink). A gaussian of sigma 2.4 on 3 px modules leaves 4% of the contrast between
    # neighbouring modules: no stage measured reads such photos, so that reading was left.
    "phone": Degradation(module_px=(3.0, 4.5), rotation=40, perspective=0.12, blur=(0.3, 1.2),
                         contrast=(0.45, 0.9), light=0.6, jpeg=(25, 70), clutter=20,
                         phone=Phone(shrink=(0.5, 1.0), defocus=(0.8, 2.4), motion=(1.0, 4.5),
                                     full_well=(300.0, 3000.0), read_noise=3.0, vignette=0.4,
                                     glare=0.3, screen=0.15, curl=0.03,
                                     camera_jpeg=(70, 92))),
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


def _clutter(draw: ImageDraw.ImageDraw, size: tuple[int, int],
             avoid: list[tuple[int, int, int, int]], count: int, rng: random.Random) -> None:
    words = ["HÓA ĐƠN GIÁ TRỊ GIA TĂNG", "发票代码 044031900111", "Tổng tiền: 1.100.000",
             "价税合计 ¥106.00", "Mã tra cứu: X7K2P", "ký hiệu C22TAA số 0000123",
             "校验码 12345 67890", "Người mua hàng", "开票日期 2024年11月14日"]
    for _ in range(count * 4):
        if count <= 0:
            break
        font = ImageFont.load_default(size=rng.randint(12, 30))
        x, y = rng.randint(0, size[0] - 50), rng.randint(0, size[1] - 20)
        if any(x0 - 400 < x < x1 and y0 - 30 < y < y1 for x0, y0, x1, y1 in avoid):
            continue  # keep the quiet zones: clutter *around* the codes, not on them
        ink = rng.randint(20, 110)
        if rng.random() < 0.7:
            draw.text((x, y), rng.choice(words), fill=ink, font=font)
        else:
            draw.rectangle((x, y, x + rng.randint(40, 300), y + rng.randint(2, 60)),
                           outline=ink, width=rng.randint(1, 3))
        count -= 1


def photo(texts: list[str], *, seed: int, level: Degradation | str = "clean",
          size: tuple[int, int] = (1280, 960), fmt: str = "JPEG", ec: EcLevel = "M",
          module_px: list[float] | None = None) -> bytes:
    """A photo of one or more printed codes, degraded as `level` says, encoded as `fmt`.
    `module_px` sets each code's module size instead of drawing it from the level."""
    deg = LEVELS[level] if isinstance(level, str) else level
    rng = random.Random(seed)
    final = size
    if deg.phone:  # drawn at the sensor's resolution, shrunk to `size` at the end
        shrink = rng.uniform(*deg.phone.shrink)
        size = (round(size[0] / shrink), round(size[1] / shrink))
    scene = Image.new("L", size, PAPER)
    draw = ImageDraw.Draw(scene)
    slots = len(texts)
    boxes: list[tuple[int, int, int, int]] = []
    for i, text in enumerate(texts):
        modules = qr_modules(text, ec)
        px = rng.uniform(*deg.module_px)
        px = module_px[i] if module_px else px
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
    _clutter(draw, size, boxes, deg.clutter, rng)
    scene = _phone(scene, deg, deg.phone, rng, final) if deg.phone else _camera(scene, deg, rng)
    return encode(scene, fmt, quality=rng.randint(*deg.jpeg)) if fmt == "JPEG" else encode(
        scene, fmt)


def _camera(scene: Image.Image, deg: Degradation, rng: random.Random) -> Image.Image:
    """What the phone adds: perspective, focus, light, contrast, sensor noise."""
    scene = _perspective(scene, deg, rng)
    radius = rng.uniform(*deg.blur)
    if radius > 0.05:
        scene = scene.filter(ImageFilter.GaussianBlur(radius))
    scene = _light(_contrast(scene, deg, rng), deg, rng)
    if deg.noise:  # seeded (Pillow's effect_noise is not), so a photo is reproducible
        gen = np.random.default_rng(rng.randrange(2**32))
        pixels = np.asarray(scene, dtype=np.float32)
        pixels = pixels + gen.normal(0, deg.noise, pixels.shape).astype(np.float32)
        scene = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return scene


def _perspective(scene: Image.Image, deg: Degradation, rng: random.Random) -> Image.Image:
    if not deg.perspective:
        return scene
    w, h = scene.size
    s = deg.perspective * min(w, h)
    corners = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    moved = [(x + rng.uniform(-s, s), y + rng.uniform(-s, s)) for x, y in corners]
    return scene.transform(scene.size, Image.Transform.PERSPECTIVE,
                           perspective_coeffs(corners, moved), Image.Resampling.BICUBIC,
                           fillcolor=PAPER - 40)


def _contrast(scene: Image.Image, deg: Degradation, rng: random.Random) -> Image.Image:
    keep = rng.uniform(*deg.contrast)
    if keep >= 1.0:
        return scene
    floor = PAPER * (1 - keep)
    return scene.point(lambda v: round(floor + v * keep))


def _light(scene: Image.Image, deg: Degradation, rng: random.Random) -> Image.Image:
    """A smooth light fall-off in a random direction, `deg.light` deep on the dark side."""
    if not deg.light:
        return scene
    # Rotate the 256-px ramp, then keep its centre (no corners filled in).
    ramp = Image.linear_gradient("L").rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR)
    gradient = ramp.crop((38, 38, 218, 218)).resize(scene.size, Image.Resampling.BILINEAR)
    dark = round(255 * (1 - deg.light))
    return ImageChops.multiply(scene, gradient.point(lambda v: dark + v * (255 - dark) // 255))


def _phone(scene: Image.Image, deg: Degradation, cam: Phone, rng: random.Random,
           final: tuple[int, int]) -> Image.Image:
    """`Phone`'s chain, from the paper to the shrunk upload (before the app's JPEG)."""
    scene = _geometry(scene, deg, cam, rng)
    gen = np.random.default_rng(rng.randrange(2**32))
    w, h = scene.size
    if rng.random() < cam.screen:
        # An LCD's dark pixel grid, point-sampled by the sensor: a pitch just above the
        # sensor's beats with it into the broad, tilted bands of moire.
        pitch, angle, depth = rng.uniform(1.05, 1.3), rng.uniform(-0.2, 0.2), rng.uniform(0.2, 0.4)
        k = np.float32(2 * np.pi / pitch)
        xs = np.arange(w, dtype=np.float32)[None, :]
        ys = np.arange(h, dtype=np.float32)[:, None]
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        grid = 0.5 + 0.25 * (np.cos((xs * c + ys * s) * k) + np.cos((ys * c - xs * s) * k))
        lit = 30 + np.asarray(scene, dtype=np.float32) * (1 - depth * grid) * 0.85
        scene = Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))  # black is never black
    scene = _light(_contrast(scene, deg, rng), deg, rng)
    if cam.vignette:  # light lost towards the corners (cos^4 law, approximated)
        lost = cam.vignette * rng.random()
        xs = ((np.arange(w, dtype=np.float32) - w / 2) / (w / 2))[None, :] ** 2
        ys = ((np.arange(h, dtype=np.float32) - h / 2) / (h / 2))[:, None] ** 2
        pixels = np.asarray(scene, dtype=np.float32) * (1 - lost / 2 * (xs + ys))
        scene = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < cam.glare:  # a specular reflection: light added, clipped at white
        scene = _glare(scene, rng)
    scene = scene.filter(_lens(deg, cam, rng))
    if cam.full_well[1] > 0:  # shot noise (Poisson, as its gaussian limit) and read noise
        well = rng.uniform(*cam.full_well)
        pixels = np.asarray(scene, dtype=np.float32)
        sigma = np.sqrt(pixels * np.float32(255 / well) + np.float32(cam.read_noise**2))
        pixels = pixels + sigma * gen.standard_normal(pixels.shape, dtype=np.float32)
        scene = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    scene = Image.open(io.BytesIO(encode(scene, quality=rng.randint(*cam.camera_jpeg))))
    method = rng.choice((Image.Resampling.BILINEAR, Image.Resampling.BICUBIC,
                         Image.Resampling.LANCZOS))
    return scene.convert("L").resize(final, method)


def _glare(scene: Image.Image, rng: random.Random) -> Image.Image:
    w, h = scene.size
    sigma = rng.uniform(0.03, 0.12) * min(w, h)
    gx, gy = rng.uniform(0, w), rng.uniform(0, h)
    x0, x1 = max(0, int(gx - 3 * sigma)), min(w, int(gx + 3 * sigma) + 1)
    y0, y1 = max(0, int(gy - 3 * sigma)), min(h, int(gy + 3 * sigma) + 1)
    if x1 <= x0 or y1 <= y0:
        return scene
    xs = ((np.arange(x0, x1, dtype=np.float32) - gx) ** 2)[None, :]
    ys = ((np.arange(y0, y1, dtype=np.float32) - gy) ** 2)[:, None]
    spot = rng.uniform(80, 220) * np.exp(-(xs + ys) / np.float32(2 * sigma**2))
    pixels = np.array(scene, dtype=np.float32)
    pixels[y0:y1, x0:x1] += spot
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _geometry(scene: Image.Image, deg: Degradation, cam: Phone,
              rng: random.Random) -> Image.Image:
    """Paper curl, then the camera's perspective, in one bilinear mesh transform: the paper
    bows like a cylinder seen from the front (rows lift by up to `cam.curl` of the height in
    the middle), then the whole page is seen at an angle (`deg.perspective`)."""
    w, h = scene.size
    bend = cam.curl * rng.random() * h
    s = deg.perspective * min(w, h)
    corners = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    moved = [(x + rng.uniform(-s, s), y + rng.uniform(-s, s)) for x, y in corners]
    a, b, c, d, e, f, g, k = perspective_coeffs(corners, moved)

    def source(x: float, y: float) -> tuple[float, float]:
        z = g * x + k * y + 1
        u, v = (a * x + b * y + c) / z, (d * x + e * y + f) / z
        return u, v - bend * (1 - (2 * u / w - 1) ** 2)

    cols, rows = 16, 12
    mesh = []
    for i in range(cols):
        x0, x1 = w * i // cols, w * (i + 1) // cols
        for j in range(rows):
            y0, y1 = h * j // rows, h * (j + 1) // rows
            quad = (*source(x0, y0), *source(x0, y1), *source(x1, y1), *source(x1, y0))
            mesh.append(((x0, y0, x1, y1), quad))
    return scene.transform(scene.size, Image.Transform.MESH, mesh,
                           Image.Resampling.BILINEAR, fillcolor=PAPER - 40)


def _lens(deg: Degradation, cam: Phone, rng: random.Random) -> ImageFilter.Filter:
    """One blur per photo: defocus (a disk), hand shake (a line) or a gaussian; 5x5 at most
    (Pillow's largest kernel), wide enough for a 2.4 px disk or a 4.5 px line."""
    kind = rng.randrange(3)
    if kind == 0:
        radius = rng.uniform(*cam.defocus)
        weights = [_disk_cover(dx, dy, radius) for dy in range(-2, 3) for dx in range(-2, 3)]
    elif kind == 1:
        length, angle = rng.uniform(*cam.motion), rng.uniform(0, np.pi)
        weights = [_line_cover(dx, dy, length, angle) for dy in range(-2, 3)
                   for dx in range(-2, 3)]
    else:
        return ImageFilter.GaussianBlur(rng.uniform(*deg.blur))
    return ImageFilter.Kernel((5, 5), weights, scale=sum(weights))


def _disk_cover(dx: int, dy: int, radius: float, steps: int = 8) -> float:
    """How much of pixel (dx, dy) a disk of `radius` centred on (0, 0) covers."""
    inside = sum((dx + (i + 0.5) / steps - 0.5) ** 2 + (dy + (j + 0.5) / steps - 0.5) ** 2
                 <= radius**2 for i in range(steps) for j in range(steps))
    return max(inside / steps**2, 1e-3 if dx == dy == 0 else 0.0)


def _line_cover(dx: int, dy: int, length: float, angle: float, steps: int = 64) -> float:
    """How much of a centred line of `length` at `angle` passes through pixel (dx, dy)."""
    hits = 0
    for k in range(steps):
        t = (k + 0.5) / steps - 0.5
        x, y = t * length * np.cos(angle), t * length * np.sin(angle)
        hits += round(x) == dx and round(y) == dy
    return hits / steps


def two_code_photo(first: str, second: str, *, seed: int = 7) -> bytes:
    return photo([first, second], seed=seed, level=Degradation(module_px=(5.0, 6.0),
                                                               rotation=8, clutter=4),
                 size=(1600, 900))


def uneven_pair_photo(first: str, second: str, *, seed: int = 1) -> bytes:
    """Two codes side by side, the first printed large and the second small (1.8 px per
    module) and slightly soft: zxing-cpp reads the first on the photo as uploaded and only
    finds the second in a crop around it."""
    return photo([first, second], seed=seed, size=(1600, 900), module_px=[5.0, 1.8],
                 level=Degradation(blur=(0.6, 0.6), rotation=8, clutter=4, jpeg=(60, 60)))


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
