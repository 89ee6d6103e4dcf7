"""The open-time bound on a photo's memory, checked from its header before any pixel is
decoded (`verify/qr/pool.py` runs it first in the decode job).

`max_pixels` bounds what a header may claim; this bounds what decoding it would allocate.
Pillow keeps every multi-band picture (RGB, RGBA, LA, CMYK, ...) at 4 bytes a pixel, so a
7071x7071 RGBA PNG (212 KB on the wire, just under 50 megapixels) decodes to 200 MB before
it can be greyscaled. A JPEG is decoded at a reduced DCT scale straight to greyscale
(`preprocess.open_picture`), so only its pixel count is bounded; any other format must fit
`max_decoded_bytes` as decoded.
"""

from __future__ import annotations

import io

from PIL import Image

from verify.qr.preprocess import FORMATS, ImageRejected, heif_available

_ONE_BYTE = frozenset({"1", "L", "P"})
_REDUCED = frozenset({"JPEG", "MPO"})


def bytes_per_pixel(mode: str) -> int:
    """What Pillow stores a pixel of `mode` in."""
    if mode in _ONE_BYTE:
        return 1
    return 2 if mode.startswith("I;16") else 4


def check_decoded_size(data: bytes, max_decoded_bytes: int) -> None:
    """Raise `ImageRejected` 413 when decoding the upload would take more than
    `max_decoded_bytes`; anything else (not an image, a bomb) is left to `open_picture`."""
    formats = FORMATS if heif_available() else FORMATS[:-1]
    try:
        img = Image.open(io.BytesIO(data), formats=formats)
    except Exception:  # open_picture opens it again and words the refusal
        return
    with img:
        if (img.format or "") in _REDUCED:
            return
        width, height = img.size
        decoded = width * height * bytes_per_pixel(img.mode)
        if decoded > max_decoded_bytes:
            raise ImageRejected(413, "image_too_large", "the image would take more than "
                                f"{max_decoded_bytes} bytes decoded: send a JPEG or a "
                                "smaller picture", width=width, height=height, mode=img.mode,
                                decoded_bytes=decoded, max_decoded_bytes=max_decoded_bytes)
