"""`GET /invoices/{id}/qr.png`: our own QR for an indexed invoice.

The text is `verify.qr.payload.our_payload` (IVQR1, docs/formats.md#qr-payloads): compact, no URL
(a URL would send phone cameras to a browser that has no API key), scheme first, the key,
then the total and issue date so a scan also checks them against the index. The image is
built from the module matrix with whole-pixel modules (no resampling blur), padded with
white to exactly the size asked for, as a 1-bit PNG.
"""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
from PIL import Image

EC_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 128, 2048, 400
DEFAULT_EC = "M"
QUIET_ZONE = 4  # modules of white border the standard requires


def render_png(text: str, size: int = DEFAULT_SIZE, ec: str = DEFAULT_EC) -> bytes:
    """A `size` x `size` px image: the largest whole number of pixels a module that fits
    (so every module is a crisp square, nothing resampled), centred in a quiet zone widened
    to fill the rest. Only a code of more modules than `size` (impossible for our payloads at
    `MIN_SIZE`: see `tests/verify/qr/test_qr_png.py`) comes out larger, at 1 px a module."""
    code = qrcode.QRCode(error_correction=EC_LEVELS[ec], box_size=1, border=QUIET_ZONE)
    code.add_data(text.encode("utf-8"))
    code.make(fit=True)
    matrix = code.get_matrix()
    modules = len(matrix)
    img = Image.new("1", (modules, modules), 1)
    img.putdata([0 if cell else 1 for row in matrix for cell in row])
    box = max(1, size // modules)
    img = img.resize((modules * box, modules * box), Image.Resampling.NEAREST)
    if img.width < size:
        canvas = Image.new("1", (size, size), 1)
        offset = (size - img.width) // 2
        canvas.paste(img, (offset, offset))
        img = canvas
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()
