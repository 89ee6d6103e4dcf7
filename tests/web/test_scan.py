"""The scan page reads a real QR from a camera: Chromium's fake capture device plays a Y4M
of our QR of a demo invoice. Decoded on the device when the browser has BarcodeDetector
(Chromium on Linux usually has not: that test then says so and skips), else by sending
frames to the service; the second test removes BarcodeDetector so the fallback always runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.web.camera import demo_qr_text, write_y4m
from tests.web.site import PHONE, Site, chromium, signed_in

pytestmark = pytest.mark.browser
NO_DETECTOR = "delete window.BarcodeDetector;"


def camera_args(video: Path) -> list[str]:
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]


async def _scan(browser: Browser, site: Site, *, without_detector: bool) -> str:
    context, page = await signed_in(browser, site, "verify", viewport=PHONE, permissions=["camera"])
    if without_detector:
        await context.add_init_script(NO_DETECTOR)
    await page.goto("/web/scan")
    await page.get_by_role("button", name="Start camera").click()
    verdict = page.locator("#verdict-slot .verdict")
    await expect(verdict).to_have_attribute("data-status", "valid", timeout=30_000)
    await expect(verdict.locator(".status")).to_contain_text("Valid")
    await expect(page.locator("#history li")).to_have_count(1)
    decoder = await page.locator("#scan").get_attribute("data-decoder")
    await context.close()
    return str(decoder)


async def test_the_scan_page_reads_a_camera_through_the_service(site: Site, tmp_path: Path) -> None:
    video = write_y4m(tmp_path / "qr.y4m", demo_qr_text())
    async with chromium(camera_args(video)) as browser:
        assert await _scan(browser, site, without_detector=True) == "server"


async def test_the_scan_page_reads_a_camera_on_the_device(site: Site, tmp_path: Path) -> None:
    video = write_y4m(tmp_path / "qr.y4m", demo_qr_text())
    async with chromium(camera_args(video)) as browser:
        probe = await browser.new_page()
        has_detector = await probe.evaluate("'BarcodeDetector' in window")
        await probe.close()
        if not has_detector:
            pytest.skip(
                "this Chromium has no BarcodeDetector (Linux builds lack the shape "
                "detection backend): the scan page uses the service, tested above"
            )
        assert await _scan(browser, site, without_detector=False) == "device"


async def test_a_photo_upload_is_checked(site: Site, browser: Browser, tmp_path: Path) -> None:
    from verify.qr.encode import render_png

    photo = tmp_path / "qr.png"
    photo.write_bytes(render_png(demo_qr_text(7), size=400))
    context, page = await signed_in(browser, site, "verify", viewport=PHONE)
    await page.goto("/web/scan")
    await page.locator("#photo").set_input_files(photo)
    await expect(page.locator("#verdict-slot .verdict .status")).to_contain_text("Cancelled")
    await context.close()


async def test_the_device_path_checks_what_the_browsers_detector_read(
    site: Site, tmp_path: Path
) -> None:
    """Where Chromium has no BarcodeDetector (above), the page's on-device path still runs
    here with a stand-in detector that 'reads' our demo QR's text from the fake camera: what
    is tested is the page sending it to /web/scan/text and showing the card, not decoding."""
    text = demo_qr_text(2)
    stand_in = (
        "window.BarcodeDetector = class { static async getSupportedFormats() "
        "{ return ['qr_code']; } async detect() { return [{rawValue: "
        + repr(text).replace("'", '"')
        + "}]; } };"
    )
    video = write_y4m(tmp_path / "qr.y4m", text)
    async with chromium(camera_args(video)) as browser:
        context, page = await signed_in(
            browser, site, "verify", viewport=PHONE, permissions=["camera"]
        )
        await context.add_init_script(stand_in)
        await page.goto("/web/scan")
        await page.get_by_role("button", name="Start camera").click()
        verdict = page.locator("#verdict-slot .verdict")
        await expect(verdict).to_have_attribute("data-status", "valid")
        assert await page.locator("#scan").get_attribute("data-decoder") == "device"
        await expect(page.locator("#history li")).to_have_count(1)
        await context.close()
