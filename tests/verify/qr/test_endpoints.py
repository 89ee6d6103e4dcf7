"""The QR endpoints through the real app: generated photos in, verification answers out."""

from __future__ import annotations

import io
from typing import Any

import pytest
from aiohttp import FormData
from PIL import Image

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import SELLER, cancel, cn_digital, cn_invoice, package, vn_invoice
from tests.verify.qr import images
from verify.keys import QR_POOL

PHOTO = "/api/v1/verify/qr"
TEXT = "/api/v1/verify/qr-text"
CN_QR = "01,10,013002200211,81532753,205.30,20230323,49753264642977383169,0816,"
DIGITAL_QR = "01,32,,23442000000014209621,112.00,20230215,,74AE"


def ours(number: int, total: str = "1100000") -> str:
    return f"IVQR1|vn|{SELLER}|1|C22TAA|{number}|{total}|2022-05-15"


@pytest.fixture
async def loaded(cli: Client) -> Client:
    resp = await cli.post("/api/v1/packages", json=package(
        [vn_invoice(1), vn_invoice(2), vn_invoice(3), cn_invoice(), cn_digital()],
        [cancel(3)]))
    assert (await resp.json())["result"] == "accepted"
    return cli


async def post_photo(cli: Client, data: bytes, content_type: str = "image/jpeg", *,
                     status: int = 200, multipart: bool = True) -> dict[str, Any]:
    if multipart:
        form = FormData()
        form.add_field("note", "shop 7")  # other fields are ignored
        form.add_field("image", data, filename="../../etc/passwd", content_type=content_type)
        resp = await cli.post(PHOTO, data=form)
    else:
        resp = await cli.post(PHOTO, data=data, headers={"Content-Type": content_type})
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def statuses(body: dict[str, Any]) -> list[str | None]:
    return [c["result"]["status"] if c["result"] else None for c in body["codes"]]


async def test_clean_scan_of_a_chinese_invoice_qr_is_verified(loaded: Client) -> None:
    body = await post_photo(loaded, images.qr_png(CN_QR), "image/png")
    assert body["outcome"] == "decoded"
    (code,) = body["codes"]
    assert code["payload"]["raw"] == CN_QR
    assert code["payload"]["format"] == "cn-qr"
    assert code["error"] is None
    result = code["result"]
    assert (result["status"], result["scheme"]) == ("valid", "cn")
    assert result["key"] == {"invoice_code": "013002200211", "invoice_number": "81532753"}
    assert (result["source"], result["degraded"], result["gap_id"]) == ("primary", False, None)
    assert body["image"]["format"] == "PNG"
    assert body["image"]["decoder"] == "zxing-cpp"


async def test_digital_invoice_qr_as_raw_body(loaded: Client) -> None:
    body = await post_photo(loaded, images.qr_png(DIGITAL_QR), "image/png", multipart=False)
    assert statuses(body) == ["valid"]
    assert body["codes"][0]["payload"]["amount_compared_as"] == "total_amount"


async def test_amount_that_differs_from_the_record_is_a_mismatch(loaded: Client) -> None:
    body = await post_photo(loaded, images.qr_png(CN_QR.replace("205.30", "250.30")),
                            "image/png")
    assert statuses(body) == ["mismatch"]
    assert body["codes"][0]["result"]["mismatches"] == [
        {"field": "amount", "given": "250.3", "recorded": "205.3"}]


@pytest.mark.parametrize(("level", "seed"), [
    (images.Degradation(rotation=40, module_px=(5.0, 6.0), clutter=8), 1),  # rotated
    (images.Degradation(blur=(1.4, 1.6), module_px=(5.0, 6.0)), 2),  # blurred
    ("moderate", 3),  # all of it, moderately
])
async def test_photos_of_our_code_are_verified(loaded: Client, level: Any, seed: int) -> None:
    body = await post_photo(loaded, images.photo([ours(1)], seed=seed, level=level))
    assert statuses(body) == ["valid"]
    assert body["codes"][0]["result"]["key"]["number"] == 1


async def test_two_codes_in_one_photo_are_both_verified(loaded: Client) -> None:
    body = await post_photo(loaded, images.two_code_photo(ours(2), ours(3)))
    by_number = {c["result"]["key"]["number"]: c for c in body["codes"]}
    assert by_number[2]["result"]["status"] == "valid"
    assert by_number[3]["result"]["status"] == "cancelled"
    assert by_number[2]["position"]["x"] < by_number[3]["position"]["x"]


async def test_a_qr_that_is_not_an_invoice_is_answered_not_refused(loaded: Client) -> None:
    for text in ("https://shop.example.com/menu?table=4", "WIFI:S:Quán cà phê;T:WPA;P:x;;"):
        body = await post_photo(loaded, images.qr_png(text), "image/png")
        (code,) = body["codes"]
        assert code["result"] is None
        assert code["error"]["code"] == "no_invoice_qr"
        assert code["payload"]["raw"] == text  # UTF-8 text read back exactly


async def test_unknown_invoice_is_not_found(loaded: Client) -> None:
    body = await post_photo(loaded, images.qr_png(ours(99)), "image/png")
    assert statuses(body) == ["not_found"]


async def test_photo_without_a_code_is_no_qr_found(loaded: Client) -> None:
    blank = images.encode(Image.new("L", (800, 600), 230))
    body = await post_photo(loaded, blank)
    assert (body["outcome"], body["codes"]) == ("no_qr_found", [])
    assert (body["image"]["width"], body["image"]["height"]) == (800, 600)


async def test_exif_orientation_is_honoured(loaded: Client) -> None:
    upright = Image.open(io.BytesIO(images.photo([ours(1)], seed=4, size=(800, 1200))))
    stored = upright.rotate(90, expand=True)  # the camera stores it on its side...
    body = await post_photo(loaded, images.with_exif_orientation(stored, 6))  # ...and says so
    assert (body["image"]["width"], body["image"]["height"]) == (800, 1200)
    assert statuses(body) == ["valid"]


async def test_webp_and_heic_photos(loaded: Client) -> None:
    img = Image.open(io.BytesIO(images.photo([ours(2)], seed=5)))
    for fmt, ctype in (("WEBP", "image/webp"), ("HEIF", "image/heic")):
        data = images.encode(img.convert("RGB"), fmt, quality=80)
        body = await post_photo(loaded, data, ctype)
        assert statuses(body) == ["valid"], fmt
        assert body["image"]["format"] == fmt


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"this is not an image at all", 400, "not_an_image"),
    (bytes(range(256)) * 40, 400, "not_an_image"),
    (images.png_header_only(200_000, 200_000), 413, "image_too_large"),  # bomb header
    (images.png_header_only(9_000, 6_000), 413, "image_too_large"),  # over the limit, < 2x
    (b"", 400, "empty_image"),
])
async def test_bad_uploads_are_clear_4xx(loaded: Client, data: bytes, status: int,
                                         code: str) -> None:
    body = await post_photo(loaded, data, "image/png", status=status)
    assert body["error"]["code"] == code


async def test_truncated_jpeg_is_400(loaded: Client) -> None:
    data = images.photo([ours(1)], seed=6)
    body = await post_photo(loaded, data[: len(data) // 2], status=400)
    assert body["error"]["code"] == "truncated_image"


@pytest.mark.slow
async def test_100_megapixel_image_is_refused_before_decoding(loaded: Client) -> None:
    data = images.blank_png(10_000, 10_000)  # ~100 KB on the wire, 100 MP decoded
    body = await post_photo(loaded, data, "image/png", status=413)
    assert body["error"]["code"] == "image_too_large"
    assert body["error"]["details"]["max_pixels"] == 50_000_000
    after = await loaded.get("/api/v1/invoices/lookup",
                             params={"number": "23442000000014209621"})
    assert (await after.json())["status"] == "valid"  # nothing else disturbed


async def test_wrong_media_type_and_missing_field(loaded: Client) -> None:
    resp = await loaded.post(PHOTO, data=b"x", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    form = FormData()
    form.add_field("photo", b"x", filename="a.jpg", content_type="image/jpeg")
    resp = await loaded.post(PHOTO, data=form)
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "missing_image")
    form = FormData()
    form.add_field("image", b"x", filename="a.txt", content_type="text/html")
    resp = await loaded.post(PHOTO, data=form)
    assert resp.status == 415


async def test_every_decode_slot_taken_is_503(loaded: Client) -> None:
    pool = loaded.app[QR_POOL]
    holds = [pool.slot() for _ in range(pool.max_pending)]
    for hold in holds:
        hold.__enter__()
    try:
        resp = await loaded.post(PHOTO, data=images.qr_png(CN_QR),
                                 headers={"Content-Type": "image/png"})
        assert (resp.status, resp.headers["Retry-After"]) == (503, "1")
        lookup = await loaded.get("/api/v1/invoices/lookup",
                                  params={"number": "23442000000014209621"})
        assert lookup.status == 200  # lookups never wait for the decode pool
    finally:
        for hold in holds:
            hold.__exit__(None, None, None)
    assert pool.pending == 0


async def test_qr_text_verifies_like_a_lookup(loaded: Client) -> None:
    resp = await loaded.post(TEXT, json={"payload": CN_QR})
    body = await resp.json()
    assert body["result"]["status"] == "valid"
    assert body["payload"]["check_code"] == "49753264642977383169"
    resp = await loaded.post(TEXT, json={"payload": "https://example.com"})
    assert (await resp.json())["error"]["code"] == "no_invoice_qr"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"payload": 12}, 422, "invalid_body"),
    ({}, 422, "invalid_body"),
    ({"payload": "x", "extra": 1}, 400, "unknown_parameter"),
])
async def test_qr_text_bad_bodies(loaded: Client, body: dict[str, Any], status: int,
                                  code: str) -> None:
    resp = await loaded.post(TEXT, json=body)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code


async def test_verify_role_uses_qr_and_each_code_is_audited(loaded: Client,
                                                            make_key: KeyMaker) -> None:
    headers = bearer(await make_key("verify", name="scanner"))
    form = FormData()
    form.add_field("image", images.two_code_photo(ours(1), CN_QR), filename="p.jpg",
                   content_type="image/jpeg")
    resp = await loaded.post(PHOTO, data=form, headers=headers)
    body = await resp.json()
    assert sorted(statuses(body)) == ["valid", "valid"]
    buyer = {c["result"]["scheme"]: c["result"]["invoice"]["buyer_tax_id"]
             for c in body["codes"]}
    assert buyer == {"vn": None, "cn": None}  # not a party: buyer redacted as in lookups
    audit = await loaded.get("/api/v1/admin/audit", params={"action": "verify"})
    targets = {e["target"] for e in (await audit.json())["entries"]}
    assert {f"vn:{SELLER}:1:C22TAA:1", "cn:013002200211:81532753"} <= targets


@pytest.mark.parametrize("size", ["²", "①", "٣٠٠", "３００", "3" * 5000, "-1", "3 00"])
async def test_qr_png_size_takes_ascii_digits_only(loaded: Client, size: str) -> None:
    resp = await loaded.get(f"/api/v1/invoices/vn:{SELLER}:1:C22TAA:1/qr.png",
                            params={"size": size})
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["details"] == {"parameter": "size"}


@pytest.mark.parametrize("size", [" 300", ""])
async def test_qr_png_size_is_read_as_every_parameter_is(loaded: Client, size: str) -> None:
    """Stripped, and empty meaning not given (verify/http/params.py, the policy of every route)."""
    resp = await loaded.get(f"/api/v1/invoices/vn:{SELLER}:1:C22TAA:1/qr.png",
                            params={"size": size})
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("bad", [f"vn:{SELLER}:1:C22TAA:²", f"vn:{SELLER}:1:C22TAA:①",
                                 f"vn:{SELLER}:1:C22TAA:٣", "cn:044031900111:８１５３２７５３",
                                 f"{SELLER}|²C22TAA|5",
                                 f"IVQR1|vn|{SELLER}|1|C22TAA|1|1|２０２２0515"])
async def test_each_code_of_a_photo_is_answered_on_its_own(loaded: Client, bad: str) -> None:
    body = await post_photo(loaded, images.two_code_photo(bad, ours(1)))
    by_raw = {c["payload"]["raw"]: c for c in body["codes"]}
    assert by_raw[ours(1)]["result"]["status"] == "valid"
    assert by_raw[bad]["result"] is None
    assert by_raw[bad]["error"]["code"] in {"invalid_invoice_qr", "no_invoice_qr"}
