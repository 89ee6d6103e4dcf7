"""Hard photos through the real app: phone-like photos that the photo as uploaded does not
give up, and a photo with two codes where only one is easy. Each is a generated photo of the
`images.py` levels, posted to `POST /api/v1/verify/qr` like a scanner would."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageOps

from tests.conftest import Client
from tests.verify.qr import images
from tests.verify.qr.test_endpoints import CN_QR, loaded, ours, post_photo, statuses
from verify.qr import decode

__all__ = ["loaded"]  # a fixture, used by name


@pytest.mark.parametrize(("seed", "stage"), [(79, "crop-x3"), (66, "crop-deblur1.0-x2")])
async def test_hard_phone_photos_are_read_from_a_crop(loaded: Client, seed: int,
                                                      stage: str) -> None:
    """Neither zxing-cpp on the whole photo nor the pipeline before issue 20 reads these."""
    body = await post_photo(loaded, images.photo([CN_QR], seed=seed, level="phone"))
    assert statuses(body) == ["valid"]
    assert body["codes"][0]["payload"]["raw"] == CN_QR
    assert body["image"]["decoder"] == f"zxing-cpp@{stage}"


async def test_a_small_code_beside_a_large_one_is_answered_too(loaded: Client) -> None:
    body = await post_photo(loaded, images.uneven_pair_photo(ours(2), ours(3)))
    by_number = {c["result"]["key"]["number"]: c for c in body["codes"]}
    assert sorted(by_number) == [2, 3]
    assert by_number[2]["result"]["status"] == "valid"
    assert by_number[3]["result"]["status"] == "cancelled"
    assert by_number[2]["position"]["x"] < by_number[3]["position"]["x"]
    assert body["image"]["decoder"] == "zxing-cpp+zxing-cpp@crop-x2"


async def test_a_photo_of_print_without_a_code_tries_a_bounded_number_of_crops(
        loaded: Client) -> None:
    """Busy print and no code: every rescue stage runs, on at most MAX_REGIONS crops."""
    no_code = images.photo([], seed=3, level=images.Degradation(clutter=60, blur=(0.5, 0.5)))
    body = await post_photo(loaded, no_code)
    assert (body["outcome"], body["codes"]) == ("no_qr_found", [])
    rescues = sum(stage.on == "regions" for stage in decode.default_stages())
    assert 1 < body["image"]["attempts"] <= 1 + rescues * decode.MAX_REGIONS


async def test_a_blank_photo_costs_one_attempt(loaded: Client) -> None:
    body = await post_photo(loaded, images.encode(Image.new("L", (1280, 960), 230)))
    assert (body["outcome"], body["image"]["attempts"]) == ("no_qr_found", 1)


async def test_a_light_on_dark_code_is_read(loaded: Client) -> None:
    """A code on a screen in dark mode: the first pass skips inverted codes (it saves a
    quarter of its time), the crop stages still try them."""
    code = Image.open(io.BytesIO(images.qr_png(ours(1)))).convert("L")
    screen = Image.new("L", (1280, 960), 20)
    screen.paste(ImageOps.invert(code), (400, 300))
    body = await post_photo(loaded, images.encode(screen))
    assert statuses(body) == ["valid"]
