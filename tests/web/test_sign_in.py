"""Signing in and out, menus by role, a key of the wrong role, and the CSRF token."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from tests.web.site import Site, sign_in, signed_in

pytestmark = pytest.mark.browser
SIGN_IN_FOR_DESK = re.compile(r".*/web/sign-in\?next=(/|%2F)web(/|%2F)desk$")


async def test_sign_in_and_out(site: Site, browser: Browser) -> None:
    context = await browser.new_context(base_url=site.base)
    page = await context.new_page()
    await page.goto("/web/desk")
    await expect(page).to_have_url(SIGN_IN_FOR_DESK)
    await page.get_by_label("API key").fill("ivk_not_a_key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")
    await page.get_by_label("API key").fill(site.keys["admin"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{site.base}/web/desk")
    cookie = next(c for c in await context.cookies() if c["name"] == "ivsession")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert site.keys["admin"] not in await page.content()  # nor in the cookie, encrypted
    assert site.keys["admin"] not in cookie["value"]
    assert (
        await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
        == "{}{}"
    )
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{site.base}/web/sign-in")
    await page.goto("/web/desk")
    await expect(page).to_have_url(SIGN_IN_FOR_DESK)
    await context.close()


async def test_menus_by_role(site: Site, browser: Browser) -> None:
    expected = {
        "verify": ["Scan", "Look up", "Batch"],
        "audit": ["Scan", "Look up", "Batch", "Ledger", "Missing invoices"],
        "admin": ["Scan", "Look up", "Batch", "Ledger", "Missing invoices", "Operations"],
    }
    for role, items in expected.items():
        context, page = await signed_in(browser, site, role)
        menu = page.get_by_role("navigation", name="Pages").get_by_role("link")
        await expect(menu).to_have_text(items)
        await context.close()


async def test_a_key_of_the_wrong_role_is_not_shown_the_page(site: Site, browser: Browser) -> None:
    context, page = await signed_in(browser, site, "verify")
    for path in ("/web/operator", "/web/auditor", "/web/ledger"):
        response = await page.goto(path)
        assert response is not None
        assert response.status == 403
        await expect(page.get_by_role("alert")).to_contain_text("may not use this page")
        await expect(page.get_by_role("heading", level=1)).to_have_text("This did not work")
    await context.close()


async def test_a_post_without_the_csrf_token_is_refused(site: Site, browser: Browser) -> None:
    context, page = await signed_in(browser, site, "admin")
    await page.goto("/web/operator")
    form: dict[str, str | float | bool] = {
        "system": "primary",
        "start": "2030-01-01T00:00",
        "end": "2030-01-01T01:00",
        "offset": "+07:00",
        "reason": "forged",
    }
    refused = await page.request.post("/web/operator/outage", form=form)
    assert refused.status == 403
    assert "csrf_refused" in await refused.text()
    wrong = await page.request.post("/web/operator/outage", form={**form, "csrf": "nope"})
    assert wrong.status == 403
    outages = await site.api("GET", "/api/v1/outages")
    assert not [w for w in outages["outages"] if w["reason"] == "forged"]
    # the same form through the page, with its token, is taken
    await page.get_by_label("End", exact=True).fill("2030-01-01T01:00")
    await page.get_by_label("Start", exact=True).fill("2030-01-01T00:00")
    await page.get_by_label("Reason", exact=True).fill("through the page")
    await page.get_by_role("button", name="Declare", exact=True).click()
    await expect(page.get_by_role("cell", name="through the page")).to_be_visible()
    await context.close()


async def test_a_revoked_key_ends_the_sign_in(site: Site, browser: Browser) -> None:
    token = site.keys["verify"]
    context = await browser.new_context(base_url=site.base)
    page = await context.new_page()
    await sign_in(page, token)
    keys = await site.api("GET", "/api/v1/admin/keys")
    key_id = next(k["key_id"] for k in keys["keys"] if k["name"] == "verify desk")
    await site.api("DELETE", f"/api/v1/admin/keys/{key_id}")
    await page.goto("/web/desk")
    await expect(page).to_have_url(SIGN_IN_FOR_DESK)
    await context.close()
