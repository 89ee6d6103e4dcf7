"""Chinese lookups with the inputs the national platform asks per invoice type
(cn-invoice §4.1): special invoices by date + amount excluding tax, ordinary e-invoices by
date + last 6 digits of the check code, fully digitalised invoices by date + total."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client
from tests.factories import CN_CODE_SPECIAL, cn_digital, cn_invoice, package

SPECIAL = cn_invoice("02550485", invoice_code=CN_CODE_SPECIAL, type_code="01",
                     check_code=None, issued_at="2018-01-15T10:00:00+08:00",
                     amount_before_tax="10545.43", tax_amount="1792.72",
                     total_amount="12338.15")


@pytest.fixture
async def loaded(cli: Client) -> Client:
    resp = await cli.post("/api/v1/packages", json=package([SPECIAL, cn_invoice(), cn_digital()]))
    assert (await resp.json())["result"] == "accepted"
    return cli


@pytest.mark.parametrize(("query", "status", "fields"), [
    # 专票 (01): code, number, date, amount excluding tax
    ({"code": CN_CODE_SPECIAL, "number": "02550485", "issued_on": "2018-01-15",
      "amount": "10545.43"}, "valid", []),
    ({"code": CN_CODE_SPECIAL, "number": "02550485", "issued_on": "2018-01-15",
      "amount": "10545.44"}, "mismatch", ["amount"]),
    # 电子普票 (10): code, number, date, last 6 of the check code
    ({"code": "013002200211", "number": "81532753", "issued_on": "2023-03-23",
      "check_code": "383169"}, "valid", []),
    ({"code": "013002200211", "number": "81532753", "issued_on": "2023-03-24",
      "check_code": "383160"}, "mismatch", ["issued_on", "check_code"]),
    # 数电 (32): 20-digit number, date, total including tax
    ({"number": "23442000000014209621", "issued_on": "2023-02-15", "total_amount": "112.00"},
     "valid", []),
    ({"number": "23442000000014209621", "issued_on": "2023-02-15", "total_amount": "105.66"},
     "mismatch", ["total_amount"]),
])
async def test_platform_inputs_per_type(loaded: Client, query: dict[str, str], status: str,
                                        fields: list[str]) -> None:
    resp = await loaded.get("/api/v1/invoices/lookup", params=query)
    answer: dict[str, Any] = await resp.json()
    assert answer["status"] == status
    assert [m["field"] for m in answer["mismatches"]] == fields
