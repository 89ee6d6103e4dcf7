"""Screenshots of every page at phone (390 px) and desktop (1280 px) width, into
docs/screenshots/: `.venv/bin/python -m tests.web.screenshots`. The pages are those of a
service holding the test invoices (`tests.web.site`), signed in with an admin key (the
scan page with the fake camera reading a demo invoice's QR)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.factories import SELLER
from tests.web.camera import demo_qr_text, write_y4m
from tests.web.site import DESKTOP, PHONE, Site, chromium, running_site, signed_in
from tests.web.test_scan import NO_DETECTOR, camera_args

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWS: dict[str, ViewportSize] = {"phone": PHONE, "desktop": DESKTOP}
DESK = f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=3&total_amount=1200000"
PAGES = {
    "home": "/web/",
    "desk": DESK,
    "batch": "/web/batch",
    "ledger": "/web/ledger",
    "auditor": f"/web/auditor?seller_tax_id={SELLER}",
    "operator": "/web/operator",
}


async def _shoot(page: Page, name: str, view: str) -> None:
    await page.screenshot(path=OUT / f"{name}-{view}.png", full_page=True)


async def _pages(browser: Browser, site: Site) -> None:
    for view, size in VIEWS.items():
        context = await browser.new_context(base_url=site.base, viewport=size)
        page = await context.new_page()
        await page.goto("/web/sign-in")
        await _shoot(page, "sign-in", view)
        await context.close()
        context, page = await signed_in(browser, site, "admin", viewport=size)
        for name, path in PAGES.items():
            await page.goto(path)
            await _shoot(page, name, view)
        batch = Path(__file__).with_name("batch.csv")
        await page.goto("/web/batch")
        await page.get_by_label("File").set_input_files(batch)
        await page.get_by_role("button", name="Check the file").click()
        await page.wait_for_url("**/web/batch/result?id=*")
        await _shoot(page, "batch-result", view)
        await context.close()


async def _scan(site: Site, folder: Path) -> None:
    video = write_y4m(folder / "qr.y4m", demo_qr_text())
    async with chromium(camera_args(video)) as browser:
        for view, size in VIEWS.items():
            context, page = await signed_in(
                browser, site, "admin", viewport=size, permissions=["camera"]
            )
            await context.add_init_script(NO_DETECTOR)
            await page.goto("/web/scan")
            await page.get_by_role("button", name="Start camera").click()
            await expect(page.locator("#verdict-slot .verdict")).to_be_visible(timeout=30_000)
            await _shoot(page, "scan", view)
            await context.close()


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        async with running_site(Path(tmp) / "data") as site:
            async with chromium() as browser:
                await _pages(browser, site)
            await _scan(site, Path(tmp))
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
