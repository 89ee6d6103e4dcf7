"""The batch page's results offer each row's receipt as a PDF when the upload asked for
receipts (as `POST /api/v1/verify/batch?receipt=true` gives each row its receipt), and none
when it did not."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from playwright.async_api import Browser, Page, expect

from tests.factories import SELLER
from tests.web.site import Site, signed_in

pytestmark = pytest.mark.browser
ROWS = [
    "seller_tax_id,template,series,number,total_amount",
    f"{SELLER},1,C22TAA,1,1100000",
    f"{SELLER},1,C22TAA,7,",
    "bad,1,C22TAA,1,",
]


def claims_of(receipt: str) -> dict[str, Any]:
    payload = receipt.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


async def upload(page: Page, tmp_path: Path, *, receipts: bool) -> None:
    path = tmp_path / "lookups.csv"
    path.write_text("\n".join(ROWS) + "\n")
    await page.goto("/web/batch")
    await page.get_by_label("File").set_input_files(path)
    if receipts:
        await page.get_by_label("A signed receipt for each row").check()
    await page.get_by_role("button", name="Check the file").click()
    await page.wait_for_url("**/web/batch/result?id=*")
    await expect(page.locator("table.results tbody tr")).to_have_count(3)


async def test_each_row_offers_its_receipt_when_asked(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    context, page = await signed_in(browser, site, "verify")
    await upload(page, tmp_path, receipts=True)
    rows = page.locator("table.results tbody tr")
    forms = rows.locator("form.receipt")
    await expect(forms).to_have_count(2)  # the error row has none
    await expect(rows.nth(2).locator("form.receipt")).to_have_count(0)
    for index, (status, number) in enumerate((("valid", 1), ("cancelled", 7))):
        receipt = await rows.nth(index).locator("input[name=receipt]").input_value()
        claims = claims_of(receipt)
        assert (claims["status"], claims["invoice"]) == (status, f"vn:{SELLER}:1:C22TAA:{number}")
        checked = await site.api("POST", "/api/v1/receipts/verify", json={"receipt": receipt})
        assert checked["valid"] is True
    async with page.expect_download() as info:
        await rows.nth(1).get_by_role("button", name="Receipt (PDF)").click()
    download = await info.value
    receipt = await rows.nth(1).locator("input[name=receipt]").input_value()
    assert download.suggested_filename == f"receipt-{claims_of(receipt)['jti']}.pdf"
    pdf = pypdfium2.PdfDocument((await download.path()).read_bytes())
    assert len(pdf) == 1
    assert "cancelled" in pdf[0].get_textpage().get_text_range().lower()
    await context.close()


async def test_rows_carry_no_receipt_unless_asked(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    context, page = await signed_in(browser, site, "verify")
    await upload(page, tmp_path, receipts=False)
    await expect(page.locator("table.results form.receipt")).to_have_count(0)
    await context.close()
