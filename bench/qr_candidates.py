"""Stages measured for the QR pipeline and left out, for `./run bench-qr --ablation`.

Each is appended to the pipeline's own stages, so its row in the ablation table shows what
it reads that the pipeline does not, and what it costs; `previous` is the pipeline before
issue 20 (zxing-cpp on the photo, then on the photo upscaled x1.5 and x2, then pyzbar on a
binarised photo), for comparison on the same photos.
"""

from __future__ import annotations

from PIL import Image, ImageOps

from verify.qr import preprocess
from verify.qr.decode import Prepare, Stage, ZbarDecoder, ZxingDecoder, as_is, binarised, enlarge


def _sharpened(factor: float) -> Prepare:
    def prepare(image: Image.Image) -> tuple[Image.Image, float] | None:
        return preprocess.sharpened_upscale(image, factor), factor
    return prepare


def _equalised(factor: float) -> Prepare:
    """Histogram equalisation of the crop (local contrast: the crop is the locality)."""
    def prepare(image: Image.Image) -> tuple[Image.Image, float] | None:
        return preprocess.upscale(ImageOps.equalize(image), factor), factor
    return prepare


def candidates() -> dict[str, list[Stage]]:
    """Name -> the stages to append to the pipeline's."""
    crops = ZxingDecoder(try_downscale=False)
    return {
        "+ photo x1.5": [Stage("x1.5", enlarge(1.5), ZxingDecoder())],
        "+ photo x2": [Stage("x2", enlarge(2.0), ZxingDecoder())],
        "+ pyzbar binarised": [Stage("binarised", binarised, ZbarDecoder())],
        "+ crop x5": [Stage("crop-x5", enlarge(5.0), crops, "regions")],
        "+ crop sharpened x2": [Stage("crop-usm-x2", _sharpened(2.0), crops, "regions")],
        "+ crop equalised x2": [Stage("crop-eq-x2", _equalised(2.0), crops, "regions")],
        "+ crop GlobalHistogram x2": [Stage("crop-x2", enlarge(2.0), ZxingDecoder(
            "GlobalHistogram", try_downscale=False), "regions")],
        "+ crop pyzbar x2": [Stage("crop-x2", enlarge(2.0), ZbarDecoder(), "regions")],
    }


def previous() -> list[Stage]:
    zxing = ZxingDecoder()
    return [Stage("as-is", as_is, zxing), Stage("x1.5", enlarge(1.5), zxing),
            Stage("x2", enlarge(2.0), zxing), Stage("binarised", binarised, ZbarDecoder())]
