"""The scan page offers each verdict's receipt as a PDF, as the desk does: the card of a code
read from a photo, and of a code the browser read itself, carries the receipt signed with
that answer; the download is one page and the receipt verifies with the service."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from playwright.async_api import Browser, Page, expect

from tests.factories import SELLER
from tests.web.camera import demo_qr_text
from tests.web.site import PHONE, Site, signed_in

pytestmark = pytest.mark.browser


def claims_of(receipt: str) -> dict[str, Any]:
    payload = receipt.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


async def download_receipt(site: Site, page: Page, status: str, number: int) -> None:
    """The card shown in the scan page's slot: its receipt is of this answer, its button
    downloads the one-page PDF of it, and the service says the receipt is its own."""
    card = page.locator("#verdict-slot .verdict")
    await expect(card).to_have_attribute("data-status", status, timeout=30_000)
    receipt = await card.locator("form.receipt input[name=receipt]").input_value()
    claims = claims_of(receipt)
    assert (claims["status"], claims["invoice"]) == (status, f"vn:{SELLER}:1:C22TAA:{number}")
    async with page.expect_download() as info:
        await card.get_by_role("button", name="Receipt (PDF)").click()
    download = await info.value
    assert download.suggested_filename == f"receipt-{claims['jti']}.pdf"
    pdf = pypdfium2.PdfDocument((await download.path()).read_bytes())
    assert len(pdf) == 1
    assert status in pdf[0].get_textpage().get_text_range().lower()
    checked = await site.api("POST", "/api/v1/receipts/verify", json={"receipt": receipt})
    assert checked["valid"] is True
    assert checked["claims"]["jti"] == claims["jti"]


async def test_a_photo_verdict_offers_its_receipt(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    from verify.qr.encode import render_png

    photo = tmp_path / "qr.png"
    photo.write_bytes(render_png(demo_qr_text(7), size=400))
    context, page = await signed_in(browser, site, "verify", viewport=PHONE)
    await page.goto("/web/scan")
    await page.locator("#photo").set_input_files(photo)
    await download_receipt(site, page, "cancelled", 7)
    await context.close()


async def test_a_verdict_read_on_the_device_offers_its_receipt(
    site: Site, browser: Browser
) -> None:
    """The page's on-device path (/web/scan/text), with a stand-in BarcodeDetector that 'reads'
    the demo QR's text as tests/web/test_scan.py's does, and a canvas for the camera: the
    camera itself is not the point."""
    text = demo_qr_text(2)
    # The code is 'read' once: read again 5 s later, the page would check it again and show
    # a new card (with a new receipt) while the test holds the first.
    stand_in = (
        "let reads = 0; window.BarcodeDetector = class { static async getSupportedFormats() "
        "{ return ['qr_code']; } async detect() { return reads++ ? [] : [{rawValue: "
        + json.dumps(text)
        + "}]; } };"
        "navigator.mediaDevices.getUserMedia = async () => { const c = "
        "document.createElement('canvas'); c.width = 64; c.height = 64; "
        "c.getContext('2d').fillRect(0, 0, 64, 64); return c.captureStream(10); };"
    )
    context, page = await signed_in(browser, site, "verify", viewport=PHONE)
    await context.add_init_script(stand_in)
    await page.goto("/web/scan")
    await page.get_by_role("button", name="Start camera").click()
    await download_receipt(site, page, "valid", 2)
    assert await page.locator("#scan").get_attribute("data-decoder") == "device"
    await context.close()
