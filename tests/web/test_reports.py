"""The auditor's report with its chart, and the operator's page in a maintenance window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, expect

from tests.factories import SELLER
from tests.web.site import Site, signed_in

pytestmark = pytest.mark.browser


async def test_an_auditor_report_with_its_chart(site: Site, browser: Browser) -> None:
    context, page = await signed_in(browser, site, "audit")
    await page.goto("/web/auditor")
    await page.get_by_label("Seller tax ID").fill(SELLER)
    await page.get_by_role("button", name="Show the report").click()
    strip = page.locator("svg.strip").first
    await expect(strip).to_be_visible()
    await expect(strip.locator("rect.missing")).to_have_count(1)
    await expect(strip.locator("rect.cancelled")).to_have_count(1)
    assert "4–5" in str(await strip.locator("rect.missing title").text_content())
    await page.get_by_text("Missing ranges").click()
    await expect(page.get_by_role("row", name="4 5 2")).to_be_visible()
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export as CSV").click()
    csv = (await (await info.value).path()).read_text()
    assert "missing" in csv
    assert "C22TAA" in csv
    await context.close()


async def test_the_operator_page_in_a_maintenance_window(site: Site, browser: Browser) -> None:
    context, page = await signed_in(browser, site, "admin")
    await page.goto("/web/operator")
    await expect(page.locator("#degraded")).to_have_count(0)
    now = datetime.now(UTC)
    await page.get_by_label("Time zone of these times").select_option("+00:00")
    start, end = now - timedelta(minutes=1), now + timedelta(hours=1)
    await page.get_by_label("Start", exact=True).fill(start.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_label("End", exact=True).fill(end.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_role("button", name="Declare", exact=True).click()
    banner = page.locator("#degraded")
    await expect(banner).to_contain_text("Degraded")
    await expect(banner).to_contain_text("Maintenance window")
    await expect(page.locator("svg.timeline rect.window")).to_have_count(1)
    # a lookup now answers from the replica, and says so
    await page.goto(f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=1")
    await expect(page.locator(".verdict .degraded")).to_contain_text("replica")
    await context.close()
