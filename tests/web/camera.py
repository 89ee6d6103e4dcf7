"""A Y4M video for Chromium's fake camera (`--use-file-for-fake-video-capture`): our own QR
code of a demo invoice (`verify.qr.encode`, `our_payload`) on a white frame."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.keys import VnKey
from tests.factories import SELLER
from verify.qr.encode import render_png
from verify.qr.payload import our_payload

WIDTH, HEIGHT = 640, 480


def demo_qr_text(number: int = 1) -> str:
    return our_payload(VnKey(SELLER, "1", "C22TAA", number), Decimal("1100000"), date(2022, 5, 15))


def write_y4m(path: Path, text: str, frames: int = 2) -> Path:
    code = Image.open(io.BytesIO(render_png(text, size=360))).convert("L")
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    frame.paste(code, ((WIDTH - code.width) // 2, (HEIGHT - code.height) // 2))
    luma = np.asarray(frame, dtype=np.uint8)
    chroma = np.full((HEIGHT // 2, WIDTH // 2), 128, dtype=np.uint8)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma.tobytes() + chroma.tobytes() + chroma.tobytes())
    return path
