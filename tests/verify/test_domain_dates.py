"""Issue dates are days in the scheme's zone (issue 17, item 1), through the real app on each
primary backend.

docs/vn-rules.md §1.4: `NLap` is `YYYY-MM-DD`, sometimes with a time, in Vietnam time
(UTC+7); docs/cn-rules.md §3.1 and §6.2: the QR's date is the issue date, a day in China
Standard Time (UTC+8).
An invoice sent with another offset (`Z`) is printed, looked up, reported and rechecked on
its local day: `2025-12-31T17:30:00Z` is 2026-01-01 in Vietnam (UTC+7), `2024-12-31T16:30:00Z`
is 2025-01-01 in China (UTC+8).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from indexer.keys import CnKey, VnKey
from indexer.model import Amounts, Invoice
from indexer.recheck import recheck_month
from indexer.store.elasticsearch import PATIENT
from tests.conftest import Client, EsTarget
from tests.factories import BUYER, SELLER, authority_code, cn_digital, package, vn_invoice, vn_key
from tests.indexer.store.release_1 import (
    release_doc,
    release_es_indices,
    release_es_invoices,
    release_sqlite_file,
)
from tests.verify.backend_apps import (  # the fixtures cli and settings, on each backend
    app_on_each_backend,  # noqa: F401
    open_primary,
    serve,
    settings_on_each_backend,  # noqa: F401
)
from verify.settings import Settings

#: Printed 2026-01-01 00:30 in Vietnam.
NEW_YEAR_VN = "2025-12-31T17:30:00Z"
#: Printed 2025-01-01 00:30 in China.
NEW_YEAR_CN = "2024-12-31T16:30:00Z"
DIGITAL_2025 = "25442000000014209621"


async def accept(cli: Client, *invoices: dict[str, Any]) -> None:
    resp = await cli.post("/api/v1/packages", json=package(list(invoices)))
    notice = await resp.json()
    assert notice["result"] == "accepted", notice


async def test_a_vn_invoice_answers_to_its_printed_date(cli: Client) -> None:
    await accept(cli, vn_invoice(1, series="C26TAA", issued_at=NEW_YEAR_VN))
    key = {k: str(v) for k, v in vn_key(1, series="C26TAA").items()}
    resp = await cli.get("/api/v1/invoices/lookup", params={**key, "issued_on": "2026-01-01"})
    answer = await resp.json()
    assert (answer["status"], answer["mismatches"]) == ("valid", []), answer
    assert answer["invoice"]["issued_on"] == "2026-01-01"
    resp = await cli.get("/api/v1/invoices/lookup", params={**key, "issued_on": "2025-12-31"})
    assert (await resp.json())["mismatches"] == [
        {"field": "issued_on", "given": "2025-12-31", "recorded": "2026-01-01"}
    ]


async def test_a_digital_cn_invoice_answers_to_a_scan_of_its_own_qr(cli: Client) -> None:
    await accept(cli, {**cn_digital(DIGITAL_2025), "issued_at": NEW_YEAR_CN})
    qr = f"01,32,,{DIGITAL_2025},112.00,20250101,,74AE"
    body = await (await cli.post("/api/v1/verify/qr-text", json={"payload": qr})).json()
    assert (body["result"]["status"], body["result"]["mismatches"]) == ("valid", []), body


async def test_report_missing_of_a_year_counts_its_first_night(cli: Client) -> None:
    await accept(
        cli,
        vn_invoice(1, series="C26TAA", issued_at=NEW_YEAR_VN),
        vn_invoice(2, series="C26TAA", issued_at="2026-01-02T09:00:00+07:00"),
    )
    resp = await cli.get(
        "/api/v1/reports/missing", params={"seller_tax_id": SELLER, "year": "2026"}
    )
    assert resp.status == 200, await resp.text()
    (series,) = (await resp.json())["sequences"]
    assert (series["series"], series["first"], series["missing"]) == ("C26TAA", 1, [])
    resp = await cli.get(
        "/api/v1/reports/missing", params={"seller_tax_id": SELLER, "year": "2025"}
    )
    assert (await resp.json())["sequences"] == []


async def test_a_buyers_ledger_period_holds_the_invoices_of_its_local_days(cli: Client) -> None:
    await accept(cli, vn_invoice(1, series="C26TAA", issued_at=NEW_YEAR_VN))
    ledger = io.StringIO()
    csv.writer(ledger).writerows(
        [
            ["seller_tax_id", "template", "series", "number", "issued_on", "total_amount"],
            [SELLER, "1", "C26TAA", "1", "2026-01-01", "1100000"],
        ]
    )
    resp = await cli.post(
        "/api/v1/reports/ledger",
        data=ledger.getvalue().encode(),
        params={"buyer_tax_id": BUYER, "from": "2026-01-01", "to": "2026-01-31"},
        headers={"Content-Type": "text/csv"},
    )
    body = await resp.json()
    assert [line["status"] for line in body["lines"]] == ["valid"], body
    resp = await cli.post(
        "/api/v1/reports/ledger",
        data=b"number\n",
        headers={"Content-Type": "text/csv"},
        params={"buyer_tax_id": BUYER, "from": "2025-12-01", "to": "2025-12-31"},
    )
    assert (await resp.json())["not_in_ledger"] == []


async def test_recheck_files_an_invoice_under_its_local_month(
    cli: Client, request: pytest.FixtureRequest, settings: Settings
) -> None:
    """`invoice-verify recheck --month`: 2025-03-01 00:30 in Vietnam is March's."""
    await accept(cli, vn_invoice(1, series="C25TAA", issued_at="2025-02-28T17:30:00Z"))
    async with open_primary(request, settings) as store:
        checked = {
            month: [n async for n, _ in recheck_month(store, None, month, settings.rules)]
            for month in ("2025-02", "2025-03")
        }
    assert checked == {"2025-02": [], "2025-03": [1]}


# --- stores made by the first release -----------------------------------------------------


def _release_invoice(key: VnKey | CnKey, sent: str) -> Invoice:
    vn = isinstance(key, VnKey)
    return Invoice(
        key=key,
        issued_at=datetime.fromisoformat(sent),
        currency="VND" if vn else "CNY",
        amounts=(
            Amounts(Decimal(1_000_000), Decimal(100_000), Decimal(1_100_000))
            if vn
            else Amounts(Decimal("105.66"), Decimal("6.34"), Decimal("112.00"))
        ),
        package_id="PKG-RELEASE-1",
        seller_tax_id=SELLER if vn else "91110108MA01ABCD1X",
        buyer_tax_id=BUYER if vn else None,
        type_code=None if vn else "32",
        authority_code=authority_code(key.number) if isinstance(key, VnKey) else None,
    )


_RELEASE_SENT: list[tuple[VnKey | CnKey, str]] = [
    (VnKey(SELLER, "1", "C26TAA", 1), NEW_YEAR_VN),
    (VnKey(SELLER, "1", "C26TAA", 2), "2026-01-02T09:00:00+07:00"),
    (VnKey(SELLER, "1", "C25TAA", 7), "2025-02-28T17:30:00Z"),
    (CnKey(None, DIGITAL_2025), NEW_YEAR_CN),
]
RELEASE_DOCS = [release_doc(_release_invoice(key, sent), sent) for key, sent in _RELEASE_SENT]


@pytest.fixture
async def released(
    request: pytest.FixtureRequest,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    admin_token: str,
) -> AsyncIterator[Client]:
    """The real app opened on a store the first release made (`release_1`)."""
    if settings.es_url:
        target: EsTarget = request.getfixturevalue("es_target")
        client = target.client_factory(settings.es_url, PATIENT)
        try:
            await release_es_indices(client, settings.es_index_prefix)
            await release_es_invoices(client, settings.es_index_prefix, RELEASE_DOCS)
        finally:
            await client.close()
    else:
        release_sqlite_file(settings.sqlite_path, RELEASE_DOCS)
    async for app_client in serve(request, aiohttp_client, settings, admin_token):
        yield app_client


async def test_a_store_of_the_first_release_is_redated_when_opened(
    released: Client, request: pytest.FixtureRequest, settings: Settings
) -> None:
    cli = released
    async with open_primary(request, settings) as store:
        assert [
            i.doc_id for i in await store.scan_invoices(date(2026, 1, 1), date(2026, 1, 2))
        ] == [f"vn:{SELLER}:1:C26TAA:1"]
        assert [
            i.doc_id for i in await store.scan_invoices(date(2025, 1, 1), date(2025, 1, 2))
        ] == [f"cn:{DIGITAL_2025}"]
        checked = {
            month: [n async for n, _ in recheck_month(store, None, month, settings.rules)]
            for month in ("2025-02", "2025-03")
        }
    assert checked == {"2025-02": [], "2025-03": [1]}
    key = {k: str(v) for k, v in vn_key(1, series="C26TAA").items()}
    resp = await cli.get("/api/v1/invoices/lookup", params={**key, "issued_on": "2026-01-01"})
    answer = await resp.json()
    assert (answer["status"], answer["invoice"]["issued_on"]) == ("valid", "2026-01-01")
    qr = f"01,32,,{DIGITAL_2025},112.00,20250101,,74AE"
    body = await (await cli.post("/api/v1/verify/qr-text", json={"payload": qr})).json()
    assert body["result"]["status"] == "valid", body
    resp = await cli.get(
        "/api/v1/reports/missing", params={"seller_tax_id": SELLER, "year": "2026"}
    )
    (series,) = (await resp.json())["sequences"]
    assert (series["series"], series["first"], series["missing"]) == ("C26TAA", 1, [])
