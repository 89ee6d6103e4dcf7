"""`GET /invoices/{id}/qr.png`: our own QR for an indexed invoice.

The text is `verify.qr.payload.our_payload` (IVQR1, README "QR payloads"): compact, no URL
(a URL would send phone cameras to a browser that has no API key), scheme first, the key,
then the total and issue date so a scan also checks them against the index. The image is
built from the module matrix with whole-pixel modules (no resampling blur), as a 1-bit PNG.
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
    """The largest whole-module image not wider than `size` px (at least 1 px a module)."""
    code = qrcode.QRCode(error_correction=EC_LEVELS[ec], box_size=1, border=QUIET_ZONE)
    code.add_data(text.encode("utf-8"))
    code.make(fit=True)
    matrix = code.get_matrix()
    modules = len(matrix)
    img = Image.new("1", (modules, modules), 1)
    img.putdata([0 if cell else 1 for row in matrix for cell in row])
    box = max(1, size // modules)
    img = img.resize((modules * box, modules * box), Image.Resampling.NEAREST)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()
