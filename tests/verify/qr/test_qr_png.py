"""Our own QR codes: drawn for an indexed invoice, read back by our own scanner path; and
the per-invoice budget applying to QR verifications like to lookups."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import Client
from tests.factories import SELLER, cn_digital, cn_invoice, package, vn_invoice
from verify.qr import encode
from verify.qr.decode import ZbarDecoder, ZxingDecoder
from verify.settings import Settings

VN_ID = f"vn:{SELLER}:1:C22TAA:1"


def ours(number: int) -> str:
    """The text of our QR of the test's Vietnamese invoice `number` (total and date)."""
    return f"IVQR1|vn|{SELLER}|1|C22TAA|{number}|1100000|2022-05-15"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_RATE_INVOICE_PER_DAY": "3"}
    )


@pytest.fixture
async def loaded(cli: Client) -> Client:
    resp = await cli.post(
        "/api/v1/packages", json=package([vn_invoice(1), cn_invoice(), cn_digital()])
    )
    assert (await resp.json())["result"] == "accepted"
    return cli


async def png(cli: Client, doc_id: str, status: int = 200, **params: str) -> bytes:
    resp = await cli.get(f"/api/v1/invoices/{doc_id}/qr.png", params=params)
    assert resp.status == status, await resp.text()
    return await resp.read()


@pytest.mark.parametrize("doc_id", [VN_ID, "cn:013002200211:81532753", "cn:23442000000014209621"])
async def test_round_trip_through_our_own_scanner(loaded: Client, doc_id: str) -> None:
    image = await png(loaded, doc_id)
    resp = await loaded.post("/api/v1/verify/qr", data=image, headers={"Content-Type": "image/png"})
    body: dict[str, Any] = await resp.json()
    (code,) = body["codes"]
    assert code["payload"]["format"] == "ivqr1"
    assert code["result"]["status"] == "valid"
    assert code["result"]["invoice"]["id"] == doc_id


@pytest.mark.parametrize(
    ("size", "ec"),
    [
        ("128", "L"),
        ("400", "M"),
        ("585", "M"),
        ("600", "Q"),
        ("601", "H"),
        ("2048", "H"),
        ("1000", "q"),
    ],
)
async def test_size_and_error_correction(loaded: Client, size: str, ec: str) -> None:
    """Exactly the size asked for (600 was 585 px: 15 whole-pixel modules of 39), and still
    read by both decoders."""
    data = await png(loaded, VN_ID, size=size, ec=ec)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    assert img.size == (int(size), int(size))
    grey = img.convert("L")
    assert [f.text for f in ZbarDecoder().decode(grey)] == [ours(1)]
    assert [f.text for f in ZxingDecoder().decode(grey)] == [ours(1)]


@pytest.mark.parametrize("ec", ["L", "H"])
@pytest.mark.parametrize("size", range(encode.MIN_SIZE, encode.MIN_SIZE + 60, 7))
def test_every_size_is_exact_with_crisp_modules(size: int, ec: str) -> None:
    """The longest payload we draw (a 14-character MST with a branch suffix, the longest
    series and number, a large total), at the smallest sizes: exactly `size` px, every
    module a square of whole pixels all alike, the quiet zone at least 4 modules wide."""
    text = "IVQR1|vn|0100109106-001|1|C22TAA|99999999|999999999999.99|2025-12-31"
    img = Image.open(io.BytesIO(encode.render_png(text, size, ec))).convert("L")
    assert img.size == (size, size)
    px = img.load()
    assert px is not None
    dark = [(x, y) for y in range(size) for x in range(size) if px[x, y] == 0]
    left, top = min(x for x, _ in dark), min(y for _, y in dark)
    right, bottom = max(x for x, _ in dark) + 1, max(y for _, y in dark) + 1
    finder = next(x for x in range(left, right) if px[x, top] != 0) - left  # 7 modules
    assert finder % 7 == 0
    module = finder // 7
    assert right - left == bottom - top
    assert (right - left) % module == 0
    assert min(left, top, size - right, size - bottom) >= encode.QUIET_ZONE * module
    for y in range(top, bottom, module):
        for x in range(left, right, module):
            cell = {px[x + i, y + j] for i in range(module) for j in range(module)}
            assert len(cell) == 1, (x, y, cell)
    assert [f.text for f in ZbarDecoder().decode(img)] == [text]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"size": "64"}, "invalid_parameter"),
        ({"size": "5000"}, "invalid_parameter"),
        ({"size": "big"}, "invalid_parameter"),
        ({"ec": "X"}, "invalid_parameter"),
        ({"colour": "red"}, "unknown_parameter"),
    ],
)
async def test_parameters_out_of_limits(loaded: Client, params: dict[str, str], code: str) -> None:
    resp = await loaded.get(f"/api/v1/invoices/{VN_ID}/qr.png", params=params)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == code


async def test_unknown_and_malformed_ids(loaded: Client) -> None:
    resp = await loaded.get(f"/api/v1/invoices/vn:{SELLER}:1:C22TAA:77/qr.png")
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "invoice_not_found")
    resp = await loaded.get("/api/v1/invoices/nonsense/qr.png")
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_id")


async def test_invoice_budget_applies_to_qr_verifications(loaded: Client) -> None:
    text = f"IVQR1|vn|{SELLER}|1|C22TAA|1||"
    for _ in range(3):
        resp = await loaded.post("/api/v1/verify/qr-text", json={"payload": text})
        assert resp.status == 200
    resp = await loaded.post("/api/v1/verify/qr-text", json={"payload": text})
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "invoice_rate_limited"
    image = await png(loaded, "cn:013002200211:81532753")  # another invoice: its own budget
    resp = await loaded.post("/api/v1/verify/qr", data=image, headers={"Content-Type": "image/png"})
    assert (await resp.json())["codes"][0]["result"]["status"] == "valid"
    photo = await loaded.post(
        "/api/v1/verify/qr", data=image, headers={"Content-Type": "image/png"}
    )
    photo = await loaded.post(
        "/api/v1/verify/qr", data=image, headers={"Content-Type": "image/png"}
    )
    (code,) = (await photo.json())["codes"]  # 4th verification of it: refused per code
    assert code["result"] is None
    assert code["error"]["code"] == "invoice_rate_limited"
