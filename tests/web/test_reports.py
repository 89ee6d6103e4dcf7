"""The auditor's report with its chart, and the operator's page in a maintenance window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, expect

from tests.factories import BUYER, SELLER
from tests.web.site import VN_NUMBERS, Site, signed_in

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
    # each system's last probe (its time and answer, or "not yet" before the first)
    await expect(page.get_by_role("columnheader", name="Last probe")).to_have_count(1)
    await expect(page.locator("td.last-probe")).to_have_count(2)
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


async def test_a_ledger_reconciliation_with_its_not_in_ledger_list(
    site: Site, browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.csv"
    ledger.write_text(
        "seller_tax_id,template,series,number,issued_on,total_amount\n"
        f"{SELLER},1,C22TAA,1,2022-05-15,1100000\n"
        f"{SELLER},1,C22TAA,2,2022-05-15,900000\n"
    )
    context, page = await signed_in(browser, site, "audit")
    await page.goto("/web/ledger")
    await page.get_by_label("Buyer tax ID").fill(BUYER)
    await page.get_by_label("From", exact=True).fill("2022-05-01")
    await page.get_by_label("To", exact=True).fill("2022-05-31")
    await page.get_by_label("Ledger file").set_input_files(ledger)
    await page.get_by_role("button", name="Reconcile").click()
    await page.wait_for_url("**/web/ledger/result?id=*")
    await expect(page.locator(".counts")).to_contain_text("Valid 1")
    await expect(page.locator(".counts")).to_contain_text("Does not match 1")
    unlisted = page.locator("#not-in-ledger + .scroll tbody tr")
    await expect(unlisted).to_have_count(len(VN_NUMBERS) - 2)
    async with page.expect_download() as info:
        await page.get_by_role("link", name="CSV").click()
    assert "not_in_ledger" in (await (await info.value).path()).read_text(encoding="utf-8-sig")
    await context.close()
