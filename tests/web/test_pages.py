"""Every page and asset: its security headers, and nothing that refers to another site
(checked in what the service sends, and in what Chromium actually requests); the languages."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from playwright.async_api import Browser, expect

from tests.factories import SELLER
from tests.web.site import Site, signed_in
from verify.web import i18n
from verify.web.security import PAGE_HEADERS

PAGES = [
    "/web/",
    "/web/desk",
    f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=1",
    "/web/scan",
    "/web/batch",
    "/web/ledger",
    "/web/auditor",
    f"/web/auditor?seller_tax_id={SELLER}",
    "/web/operator",
    "/web/nope",
]
OUTSIDE = re.compile(
    rb"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|(?-i:url)\((?!['\"]?/|#)", re.IGNORECASE
)
SVG_NAMESPACE = b"http://www.w3.org/2000/svg"


def _assets(html: bytes) -> set[str]:
    return set(re.findall(r'(?:src|href)="(/web/static/[^"]+)"', html.decode()))


@pytest.mark.browser
async def test_no_page_or_asset_refers_to_an_outside_url_and_all_send_the_headers(
    site: Site, browser: Browser
) -> None:
    context, page = await signed_in(browser, site, "admin")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    assets: set[str] = set()
    for path in ["/web/sign-in", *PAGES]:
        response = await page.goto(path)
        assert response is not None
        headers = await response.all_headers()
        for name, value in PAGE_HEADERS.items():
            assert headers.get(name.lower()) == value, (path, name)
        body = await response.body()
        assert not OUTSIDE.search(body.replace(SVG_NAMESPACE, b"")), path
        assets |= _assets(body)
    assert {"/web/static/app.css", "/web/static/scan.js"} <= assets
    for asset in assets:
        fetched = await page.request.get(asset)
        assert fetched.ok, asset
        for name, value in PAGE_HEADERS.items():
            assert fetched.headers.get(name.lower()) == value, (asset, name)
        assert not OUTSIDE.search((await fetched.body()).replace(SVG_NAMESPACE, b"")), asset
    assert requested
    assert all(url.startswith(site.base + "/") for url in requested), requested
    await context.close()


@pytest.mark.browser
async def test_the_language_follows_accept_language_and_the_switch(
    site: Site, browser: Browser
) -> None:
    context, page = await signed_in(browser, site, "verify", locale="vi-VN")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Bạn muốn làm gì?")
    await expect(page.locator("html")).to_have_attribute("lang", "vi")
    await page.get_by_role("button", name="简体中文").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("您要做什么？")
    await page.goto("/web/desk")
    await expect(page.get_by_role("button", name="查验")).to_be_visible()
    await context.close()


def test_every_catalog_has_every_text() -> None:
    folder = resources.files("verify.web") / "catalogs"
    keys = {
        lang: set(json.loads((folder / f"{lang}.json").read_text("utf-8")))
        for lang in i18n.LANGUAGES
    }
    assert keys["vi"] == keys["en"] == keys["zh-Hans"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        ("zh-CN,zh;q=0.9", "zh-Hans"),
        ("zh-TW", "en"),
        ("zh-Hant-TW,zh-Hans;q=0.5", "zh-Hans"),
        ("fr-FR,en;q=0.3,vi;q=0.5", "vi"),
        ("", "en"),
        ("en;q=0,vi;q=x", "en"),
        (None, "en"),
    ],
)
def test_accept_language(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected
