"""The desk: a lookup of each key form, with JavaScript and without; the batch upload with
its download."""

from __future__ import annotations

import base64
import json

import pypdfium2
import pytest
from playwright.async_api import Browser, expect

from tests.factories import SELLER, authority_code
from tests.web.site import CN_DIGITAL, CN_NUMBER, Site, signed_in

pytestmark = pytest.mark.browser
FORMS = [
    (
        "Vietnamese invoice",
        {"Seller tax ID": SELLER, "Template": "1", "Series": "C22TAA", "Number": "3"},
    ),
    ("Authority code", {"Authority code": authority_code(2)}),
    ("China: code + number", {"Invoice code": "013002200211", "Number": CN_NUMBER}),
    ("China: 20-digit number", {"Number": CN_DIGITAL}),
]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_a_desk_lookup_of_each_key_form(
    site: Site, browser: Browser, javascript: bool
) -> None:
    context, page = await signed_in(browser, site, "verify", java_script_enabled=javascript)
    await page.goto("/web/desk")
    for tab, fields in FORMS:
        await page.get_by_role("link", name=tab, exact=True).click()
        for label, value in fields.items():
            await page.get_by_label(label, exact=True).fill(value)
        await page.get_by_role("button", name="Check").click()
        verdict = page.locator(".verdict")
        await expect(verdict).to_have_attribute("data-status", "valid")
        await expect(verdict.locator(".status")).to_contain_text("Valid")
    await context.close()


async def test_a_mismatch_and_a_cancelled_invoice_say_so(site: Site, browser: Browser) -> None:
    context, page = await signed_in(browser, site, "verify")
    await page.goto(
        f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=3&total_amount=999"
    )
    await expect(page.locator(".verdict")).to_have_attribute("data-status", "mismatch")
    await expect(page.get_by_role("cell", name="999")).to_be_visible()
    await page.goto(f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=7")
    await expect(page.locator(".verdict .status")).to_contain_text("Cancelled")
    await page.goto(f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=4")
    await expect(page.locator(".verdict .status")).to_contain_text("Not found")
    await context.close()


async def test_a_batch_upload_with_its_download(
    site: Site, browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rows = [
        "seller_tax_id,template,series,number,total_amount",
        f"{SELLER},1,C22TAA,1,1100000",
        f"{SELLER},1,C22TAA,2,5",
        f"{SELLER},1,C22TAA,4,",
        f"{SELLER},1,C22TAA,7,",
        "bad,1,C22TAA,1,",
    ]
    upload = tmp_path_factory.mktemp("batch") / "lookups.csv"
    upload.write_text("\n".join(rows) + "\n")
    context, page = await signed_in(browser, site, "verify")
    await page.goto("/web/batch")
    await page.get_by_label("File").set_input_files(upload)
    await page.get_by_role("button", name="Check the file").click()
    await page.wait_for_url("**/web/batch/result?id=*")
    counts = page.locator(".counts")
    for words in ("All 5", "Valid 1", "Does not match 1", "Not found 1", "Cancelled 1", "Error 1"):
        await expect(counts).to_contain_text(words)
    await page.get_by_role("listitem").filter(has_text="Does not match").click()
    await expect(page.locator("table.results tbody tr")).to_have_count(1)
    async with page.expect_download() as info:
        await page.get_by_role("link", name="CSV").click()
    download = await info.value
    text = (await download.path()).read_text(encoding="utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("row,status,scheme,id")
    assert [line.split(",")[1] for line in lines[1:]] == [
        "valid",
        "mismatch",
        "not_found",
        "cancelled",
        "",
    ]
    async with page.expect_download() as info:
        await page.get_by_role("link", name="XLSX").click()
    assert (await (await info.value).path()).read_bytes()[:2] == b"PK"
    await context.close()


async def test_a_link_qr_opens_the_desk_from_a_phone_camera(site: Site, browser: Browser) -> None:
    import io

    import zxingcpp
    from PIL import Image

    context, page = await signed_in(browser, site, "verify")
    await page.goto(f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=2")
    image = page.get_by_role("img", name="A QR code a phone's camera opens this check with")
    source = await image.get_attribute("src")
    assert source is not None
    png = await (await page.request.get(source)).body()
    texts = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]
    assert texts == [
        f"{site.base}/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA"
        "&number=2&total_amount=1100000&issued_on=2022-05-15"
    ]
    await context.close()
    phone = await browser.new_context(base_url=site.base)  # a camera app: not signed in
    page = await phone.new_page()
    await page.goto(texts[0])
    await page.locator("#api_key").fill(site.keys["verify"])
    await page.locator("form button.primary").click()
    await expect(page.locator(".verdict")).to_have_attribute("data-status", "valid")
    await phone.close()


async def test_a_verdict_offers_its_receipt_as_a_pdf(site: Site, browser: Browser) -> None:
    """The card's receipt is the one signed with the answer shown; the PDF is drawn from it
    (one page) and the receipt verifies with the service."""
    context, page = await signed_in(browser, site, "verify")
    await page.goto(f"/web/desk?seller_tax_id={SELLER}&template=1&series=C22TAA&number=7")
    await expect(page.locator(".verdict")).to_have_attribute("data-status", "cancelled")
    receipt = await page.locator(".verdict form.receipt input[name=receipt]").input_value()
    payload = receipt.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["status"], claims["invoice"]) == ("cancelled", f"vn:{SELLER}:1:C22TAA:7")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Receipt (PDF)").click()
    download = await info.value
    assert download.suggested_filename == f"receipt-{claims['jti']}.pdf"
    pdf = pypdfium2.PdfDocument((await download.path()).read_bytes())
    assert len(pdf) == 1
    text = pdf[0].get_textpage().get_text_range()
    assert "cancelled" in text.lower()
    checked = await site.api("POST", "/api/v1/receipts/verify", json={"receipt": receipt})
    assert checked["valid"] is True
    await context.close()
