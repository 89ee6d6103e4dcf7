"""An invoice is judged by its seller's status on its issue date (issue 17, item 2), through
the real app on each backend: the registry keeps each taxpayer's status history, and the
status rule of intake and of the monthly recheck reads the status in force that day.

docs/vn-rules.md §4 and docs/dates-and-status.md: the authority sends each status change
with the date it takes effect, so a status holds from a date (`status_since` in our registry
file). docs/vn-rules.md §8, step 1: the seller is registered and its status is active;
step 2 re-checks a month after.
"""

from __future__ import annotations

from typing import Any

import pytest

from indexer.recheck import Finding, recheck_month
from tests.conftest import Client
from tests.factories import PROVIDER, SELLER, package, vn_invoice
from tests.verify.backend_apps import (  # the fixtures cli and settings, on each backend
    app_on_each_backend,  # noqa: F401
    open_primary,
    open_registry,
    settings_on_each_backend,  # noqa: F401
)
from verify.settings import Settings

MARCH = "2025-03-10T09:00:00+07:00"
JUNE = "2025-06-05T09:00:00+07:00"


def taxpayer(status: str, since: str | None = None) -> dict[str, Any]:
    return {
        "taxpayers": [
            {
                "tax_id": SELLER,
                "name": "Công ty Thử nghiệm",
                "status": status,
                "status_since": since,
                "registrations": [{"template": "1", "series": "C25TAA", "from": "2025-01-01"}],
            }
        ],
        "providers": [{"provider_id": PROVIDER, "name": "T-VAN", "valid_from": "2021-07-01"}],
    }


async def load_registry(cli: Client, data: dict[str, Any]) -> None:
    resp = await cli.post("/api/v1/admin/registry", json=data)
    assert resp.status == 200, await resp.text()


async def rules_of(cli: Client, *invoices: dict[str, Any]) -> list[list[str]]:
    resp = await cli.post("/api/v1/packages", json=package(list(invoices)))
    notice = await resp.json()
    return [[e["rule"] for e in item["errors"]] for item in notice["items"]]


def issued(number: int, at: str) -> dict[str, Any]:
    return vn_invoice(number, series="C25TAA", issued_at=at)


async def recheck(
    request: pytest.FixtureRequest, settings: Settings, month: str
) -> list[tuple[str, str]]:
    """`invoice-verify recheck --month` over the app's stores: (number, rule) per finding."""
    found: list[Finding] = []
    async with (
        open_primary(request, settings) as store,
        open_registry(request, settings) as registry,
    ):
        async for _, findings in recheck_month(store, registry, month, settings.rules):
            found += findings
    return [(f.doc_id.rsplit(":", 1)[1], f.rule) for f in found]


async def test_recheck_judges_a_month_by_the_status_in_force_then(
    cli: Client, request: pytest.FixtureRequest, settings: Settings
) -> None:
    await load_registry(cli, taxpayer("00"))
    assert await rules_of(cli, issued(1, MARCH), issued(2, JUNE)) == [[], []]
    await load_registry(cli, taxpayer("01", since="2025-06-01"))
    assert await recheck(request, settings, "2025-03") == []
    assert await recheck(request, settings, "2025-06") == [("2", "registry.seller.inactive")]


async def test_intake_judges_an_invoice_dated_in_the_past_by_its_days_status(
    cli: Client,
) -> None:
    await load_registry(cli, taxpayer("00"))
    await load_registry(cli, taxpayer("01", since="2025-06-01"))
    assert await rules_of(cli, issued(3, MARCH), issued(4, JUNE)) == [
        [],
        ["registry.seller.inactive"],
    ]


async def test_the_same_import_again_keeps_the_history(cli: Client) -> None:
    for data in (
        taxpayer("00"),
        taxpayer("01", since="2025-06-01"),
        taxpayer("01", since="2025-06-01"),
    ):
        await load_registry(cli, data)
    assert await rules_of(cli, issued(5, MARCH), issued(6, JUNE)) == [
        [],
        ["registry.seller.inactive"],
    ]


async def test_a_later_suspension_from_april_reaches_back_over_the_recorded_june_change(
    cli: Client,
) -> None:
    """A status with a date holds from that date on, over what was recorded after it."""
    for data in (
        taxpayer("00"),
        taxpayer("01", since="2025-06-01"),
        taxpayer("05", since="2025-04-01"),
    ):
        await load_registry(cli, data)
    assert await rules_of(
        cli, issued(7, MARCH), issued(8, "2025-04-02T09:00:00+07:00"), issued(9, JUNE)
    ) == [
        [],
        ["registry.seller.inactive"],
        ["registry.seller.inactive"],
    ]


async def test_a_status_without_a_date_holds_on_every_date(cli: Client) -> None:
    await load_registry(cli, taxpayer("00"))
    await load_registry(cli, taxpayer("01", since="2025-06-01"))
    await load_registry(cli, taxpayer("05"))
    assert await rules_of(cli, issued(10, MARCH)) == [["registry.seller.inactive"]]


async def test_before_the_first_dated_status_no_status_is_known(cli: Client) -> None:
    """The registry's first word on the seller is status 01 from 2025-06-01: its March
    invoices are not judged by it (the other registry rules still apply)."""
    await load_registry(cli, taxpayer("01", since="2025-06-01"))
    assert await rules_of(cli, issued(11, MARCH), issued(12, JUNE)) == [
        [],
        ["registry.seller.inactive"],
    ]
