"""Corrections of legacy invoices through the real app, on each primary backend (issue 17,
item 5).

vn-einvoice §5.6: `LHDCLQuan` "`3` other invoices under Decrees 51/2010 & 04/2014"; §1.1:
related-invoice templates "may be up to 11 chars because legacy invoices (Decree 51/2010,
04/2014) used `01GTKT0/001`-style templates". Such an original was never e-invoiced to us:
the correction is accepted, the original's key kept as written, the link marked external.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Client, EsTarget, bearer
from tests.factories import SELLER, package, vn_invoice, vn_key
from tests.indexer.store.conftest import fresh_prefix
from tests.xml_factories import xml_package
from verify.app import create_app
from verify.settings import Settings

LEGACY = {
    "seller_tax_id": SELLER,
    "template": "01GTKT0/001",
    "series": "AA/21E",
    "number": "0000123",
}
LEGACY_ID = f"vn:{SELLER}:01GTKT0/001:AA/21E:123"


@pytest.fixture(params=["sqlite", "elasticsearch"])
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    env = {"INVOICE_DATA_DIR": str(tmp_path / "data")}
    if request.param == "elasticsearch":
        target: EsTarget = request.getfixturevalue("es_target")
        env |= {"INVOICE_ES_URL": target.url, "INVOICE_ES_INDEX_PREFIX": fresh_prefix()}
    return Settings.from_env(env)


@pytest.fixture
async def cli(
    request: pytest.FixtureRequest,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    admin_token: str,
) -> Client:
    factory = request.getfixturevalue("es_target").client_factory if settings.es_url else None
    return await aiohttp_client(
        create_app(settings, es_client_factory=factory), headers=bearer(admin_token)
    )


async def lookup(cli: Client, number: int) -> dict[str, Any]:
    resp = await cli.get(
        "/api/v1/invoices/lookup", params={k: str(v) for k, v in vn_key(number).items()}
    )
    answer: dict[str, Any] = await resp.json()
    return answer


async def test_json_adjustment_of_a_decree_51_invoice(cli: Client) -> None:
    correction = vn_invoice(
        2,
        kind="adjustment",
        amount_before_tax="-10",
        tax_amount="-1",
        total_amount="-11",
        original={**LEGACY, "related_kind": "3"},
    )
    resp = await cli.post("/api/v1/packages", json=package([correction]))
    notice = await resp.json()
    assert notice["result"] == "accepted", notice
    answer = await lookup(cli, 2)
    assert answer["status"] == "valid"
    assert answer["invoice"]["original"] == {
        "seller_tax_id": SELLER,
        "template": "01GTKT0/001",
        "series": "AA/21E",
        "number": 123,
    }
    [related] = answer["related"]
    assert (related["relation"], related["id"]) == ("adjusts", LEGACY_ID)
    assert related["reason"].startswith("external:")
    assert "Decree 51/2010 or 04/2014" in related["reason"]


async def test_xml_replacement_of_a_legacy_invoice(cli: Client) -> None:
    body = xml_package([vn_invoice(3, kind="replacement", original=LEGACY)])
    body = body.replace(b"<LHDCLQuan>1</LHDCLQuan>", b"<LHDCLQuan>3</LHDCLQuan>")
    resp = await cli.post(
        "/api/v1/packages", data=body, headers={"Content-Type": "application/xml"}
    )
    notice = await resp.json()
    assert notice["result"] == "accepted", notice
    answer = await lookup(cli, 3)
    [related] = answer["related"]
    assert (answer["status"], related["relation"], related["id"]) == (
        "valid",
        "replaces",
        LEGACY_ID,
    )
    assert related["reason"].startswith("external:")


async def test_a_legacy_template_without_lhdclquan_is_still_refused(cli: Client) -> None:
    resp = await cli.post(
        "/api/v1/packages", json=package([vn_invoice(2, kind="replacement", original=LEGACY)])
    )
    [item] = (await resp.json())["items"]
    assert [e["rule"] for e in item["errors"]] == ["vn.template.invalid", "vn.series.invalid"]
