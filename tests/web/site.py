"""The service with its pages on a real loopback port, holding a few invoices of both
schemes, keys of each role, and Chromium (Debian's package, driven by Playwright through
`executable_path`: no browser is ever downloaded). Shared by the browser tests and
`python -m tests.web.screenshots`."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from tests.factories import BUYER, SELLER, cancel, cn_digital, cn_invoice, package, vn_invoice
from tests.verify.live_server import UNTHROTTLED, free_port
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

#: Numbers of series C22TAA held; 4 and 5 are missing, 7 is cancelled.
VN_NUMBERS = (1, 2, 3, 6, 7, 8, 9, 10)
CN_NUMBER = "81532753"
CN_DIGITAL = "23442000000014209621"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("Debian's chromium is needed (./run tests installs it with apt)")
    return found


@dataclass(frozen=True)
class Site:
    base: str
    keys: dict[str, str]  # role -> token
    client: TestClient[Any, Any]
    data_dir: Path

    async def api(self, method: str, path: str, role: str = "admin", **kw: Any) -> Any:
        resp = await self.client.request(
            method, path, headers={"Authorization": f"Bearer {self.keys[role]}"}, **kw
        )
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def _keys(settings: Settings) -> dict[str, str]:
    async with open_access_db(settings.access_path) as conn:
        store = KeyStore(conn)
        made = {
            role.value: (await store.create(role, scopes, name=f"{role.value} desk"))[0]
            for role, scopes in ((Role.ADMIN, ()), (Role.VERIFY, ()), (Role.AUDIT, (SELLER, BUYER)))
        }
    return made


@contextlib.asynccontextmanager
async def running_site(data_dir: Path, **env: str) -> AsyncIterator[Site]:
    port = free_port()  # known before the start: link QRs point at it
    settings = Settings.from_env(
        {
            "INVOICE_DATA_DIR": str(data_dir),
            "INVOICE_LOG_LEVEL": "WARNING",
            **UNTHROTTLED,
            "INVOICE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            **env,
        }
    )
    keys = await _keys(settings)
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as client:
        site = Site(str(client.make_url("")).rstrip("/"), keys, client, data_dir)
        await site.api(
            "POST",
            "/api/v1/packages",
            json=package(
                [vn_invoice(n) for n in VN_NUMBERS] + [cn_invoice(CN_NUMBER), cn_digital()]
            ),
        )
        await site.api("POST", "/api/v1/packages", json=package(notices=[cancel(7)]))
        yield site


@contextlib.asynccontextmanager
async def chromium(args: Sequence[str] = ()) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=list(args))
        try:
            yield browser
        finally:
            await browser.close()


async def signed_in(
    browser: Browser,
    site: Site,
    role: str,
    *,
    viewport: ViewportSize | None = None,
    locale: str = "en-US",
    **options: Any,
) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=site.base, viewport=viewport or DESKTOP, locale=locale, **options
    )
    page = await context.new_page()
    await sign_in(page, site.keys[role])
    return context, page


async def sign_in(page: Page, token: str) -> None:
    await page.goto("/web/sign-in")
    await page.locator("#api_key").fill(token)  # by id: the page may be in any language
    await page.locator("form button.primary").click()
    await page.wait_for_url("**/web/")
