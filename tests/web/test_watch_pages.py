"""Watches on the pages: the desk's verdict says whether the signed-in key watches the
invoice and its last change, its "Watch" button (a CSRF form) watches it, and the watches
page lists the key's own changes only; a forged POST without the session's token is refused."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.chaos.polling import poll
from tests.factories import SELLER, cancel, package
from tests.web.site import Site, signed_in

pytestmark = pytest.mark.browser
DESK_2 = f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=2"
DOC_2 = f"vn:{SELLER}:1:C22TAA:2"


async def test_watch_from_the_verdict_and_see_its_change(site: Site, browser: Browser) -> None:
    context, page = await signed_in(browser, site, "verify")
    await page.goto(DESK_2)
    verdict = page.locator(".verdict")
    await expect(verdict).to_have_attribute("data-status", "valid")
    line = verdict.locator(".watch").first
    await expect(line).to_have_attribute("data-watched", "no")
    await expect(line).to_contain_text("No change recorded")
    await page.get_by_role("button", name="Watch", exact=True).click()
    await page.wait_for_url(f"**{DESK_2}")
    await expect(line).to_have_attribute("data-watched", "yes")
    await expect(line).to_contain_text("You watch this invoice until")
    listed = await site.api("GET", "/api/v1/watches", role="verify")
    assert [w["key"] for w in listed["watches"]] == [DOC_2]

    await site.api("POST", "/api/v1/packages",
                   json=package(notices=[cancel(2, notice_id="04SS-2026-0002")]))

    async def recorded() -> bool:  # the fan-out records after the commit, in the background
        feed = await site.api("GET", "/api/v1/watches/events", role="verify")
        return bool(feed["events"])

    await poll(recorded, 60, "the cancellation's watch event")
    await page.reload()
    await expect(verdict).to_have_attribute("data-status", "cancelled")
    await expect(line.locator(".last-change")).to_contain_text("Last change: Cancelled")
    await expect(line.locator(".last-change")).to_contain_text("04SS-2026-0002")

    await line.get_by_role("link", name="Your watched invoices").click()
    await page.wait_for_url("**/web/watches")
    rows = page.locator("table.events tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-status", "cancelled")
    await expect(rows.first).to_contain_text(DOC_2)
    await expect(page.locator("table.watches")).to_contain_text(DOC_2)
    await rows.first.get_by_role("link", name=DOC_2).click()  # back to its verdict
    await expect(verdict).to_have_attribute("data-status", "cancelled")
    await context.close()

    other, page = await signed_in(browser, site, "audit")  # another key sees nothing of it
    await page.goto("/web/watches")
    await expect(page.locator("p.none")).to_be_visible()
    await expect(page.locator("table.events")).to_have_count(0)
    await page.goto(DESK_2)
    await expect(page.locator(".verdict .watch").first).to_have_attribute("data-watched", "no")
    await other.close()


async def test_a_watch_posted_without_the_sessions_token_is_refused(
        site: Site, browser: Browser) -> None:
    context, page = await signed_in(browser, site, "verify")
    response = await page.request.post("/web/watch", form={"key": DOC_2, "back": DESK_2})
    assert response.status == 403
    assert (await site.api("GET", "/api/v1/watches", role="verify"))["watches"] == []
    await context.close()
