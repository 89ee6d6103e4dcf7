"""Chinese lookups need the 查验 platform's second factor for the invoice's type before the
answer shows amounts and parties (docs/cn-rules.md §4.1): 专票/机动车 date + amount before
tax, the 普票 family date + last 6 of the check code, 数电 date + total. Without it the
status alone, the missing factor named; the invoice's parties and admins see their own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import CN_CODE_SPECIAL, cn_digital, cn_invoice, package, vn_invoice, vn_key
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

SPECIAL = cn_invoice(
    "02550485",
    invoice_code=CN_CODE_SPECIAL,
    type_code="01",
    check_code=None,
    issued_at="2018-01-15T10:00:00+08:00",
    amount_before_tax="10545.43",
    tax_amount="1792.72",
    total_amount="12338.15",
)
ORDINARY = {"code": "013002200211", "number": "81532753"}
SPECIAL_KEY = {"code": CN_CODE_SPECIAL, "number": "02550485"}
DIGITAL = {"number": "23442000000014209621"}
HIDDEN = (
    "amount_before_tax",
    "tax_amount",
    "total_amount",
    "seller_tax_id",
    "seller_name",
    "buyer_tax_id",
    "buyer_name",
)


@pytest.fixture
async def stranger(cli: Client, make_key: KeyMaker) -> dict[str, str]:
    resp = await cli.post("/api/v1/packages", json=package([SPECIAL, cn_invoice(), cn_digital()]))
    assert (await resp.json())["result"] == "accepted"
    return bearer(await make_key("verify"))


async def _ask(cli: Client, headers: dict[str, str], query: dict[str, str]) -> dict[str, Any]:
    resp = await cli.get("/api/v1/invoices/lookup", params=query, headers=headers)
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


@pytest.mark.parametrize(
    ("query", "status", "missing"),
    [
        # the wrong factor for the type: a 专票 by total, a 普票 by amount, a 数电 by amount
        ({**SPECIAL_KEY, "issued_on": "2018-01-15", "total_amount": "12338.15"}, "valid", "amount"),
        ({**ORDINARY, "issued_on": "2023-03-23", "amount": "205.30"}, "valid", "check_code_last6"),
        ({**DIGITAL, "issued_on": "2023-02-15", "amount": "105.66"}, "valid", "total_amount"),
        # a wrong amount that is not the factor: its recorded value is not echoed either
        ({**SPECIAL_KEY, "issued_on": "2018-01-15", "total_amount": "1.00"}, "mismatch", "amount"),
        # code and number alone; the factor without the date
        (ORDINARY, "valid", "check_code_last6"),
        ({**SPECIAL_KEY, "amount": "10545.43"}, "valid", "issued_on"),
        ({**DIGITAL, "total_amount": "112.00"}, "valid", "issued_on"),
    ],
)
async def test_without_the_factor_the_status_alone(
    cli: Client, stranger: dict[str, str], query: dict[str, str], status: str, missing: str
) -> None:
    answer = await _ask(cli, stranger, query)
    assert answer["status"] == status
    assert answer["withheld"] == ["amounts", "parties"]
    assert answer["missing_factor"] == missing
    assert answer["required_factors"][0] == "issued_on"
    assert all(answer["invoice"][name] is None for name in HIDDEN)
    assert all(m["recorded"] is None for m in answer["mismatches"])


@pytest.mark.parametrize(
    ("query", "wrong"),
    [
        # the type's factor given but wrong, the date right
        ({**SPECIAL_KEY, "issued_on": "2018-01-15", "amount": "1.00"}, "amount"),
        ({**ORDINARY, "issued_on": "2023-03-23", "check_code": "000000"}, "check_code_last6"),
        ({**DIGITAL, "issued_on": "2023-02-15", "total_amount": "1.00"}, "total_amount"),
        # the factor right, the date wrong: its recorded date is not echoed either
        ({**SPECIAL_KEY, "issued_on": "2018-01-16", "amount": "10545.43"}, "issued_on"),
        ({**ORDINARY, "issued_on": "2020-01-01", "check_code": "383169"}, "issued_on"),
        ({**DIGITAL, "issued_on": "2023-02-14", "total_amount": "112.00"}, "issued_on"),
        # the factor wrong and another field too: the factor is named
        ({**SPECIAL_KEY, "issued_on": "2018-01-16", "amount": "2.00", "total_amount": "3.00"},
         "amount"),
    ],
)
async def test_a_wrong_factor_withholds_as_a_missing_one(
    cli: Client, stranger: dict[str, str], query: dict[str, str], wrong: str
) -> None:
    """The platform answers 查验不一致 and shows nothing when an input differs: guessing the
    amount must not reveal the face, nor the recorded date or amounts in the mismatches."""
    answer = await _ask(cli, stranger, query)
    assert answer["status"] == "mismatch"
    assert answer["withheld"] == ["amounts", "parties"]
    assert answer["mismatched_factor"] == wrong
    assert "missing_factor" not in answer
    assert all(answer["invoice"][name] is None for name in HIDDEN)
    assert answer["mismatches"]
    assert all(m["recorded"] is None for m in answer["mismatches"])


async def test_a_party_sees_what_differs(
    cli: Client, stranger: dict[str, str], make_key: KeyMaker
) -> None:
    seller = bearer(await make_key("verify", ["91110108MA01ABCD1X"]))
    answer = await _ask(cli, seller, {**ORDINARY, "issued_on": "2020-01-01"})
    assert answer["status"] == "mismatch"
    assert "withheld" not in answer
    assert answer["mismatches"] == [
        {"field": "issued_on", "given": "2020-01-01", "recorded": "2023-03-23"}
    ]


@pytest.mark.parametrize(
    "query",
    [
        {**SPECIAL_KEY, "issued_on": "2018-01-15", "amount": "10545.43"},
        {**ORDINARY, "issued_on": "2023-03-23", "check_code": "383169"},
        {**ORDINARY, "issued_on": "2023-03-23", "check_code": "49753264642977383169"},
        {**DIGITAL, "issued_on": "2023-02-15", "total_amount": "112.00"},
    ],
)
async def test_with_the_factor_the_face(
    cli: Client, stranger: dict[str, str], query: dict[str, str]
) -> None:
    answer = await _ask(cli, stranger, query)
    assert answer["status"] == "valid"
    assert "withheld" not in answer
    assert "missing_factor" not in answer
    assert answer["invoice"]["total_amount"] is not None
    assert answer["invoice"]["seller_tax_id"] is not None


async def test_parties_and_admins_see_their_own(
    cli: Client, stranger: dict[str, str], make_key: KeyMaker
) -> None:
    seller = bearer(await make_key("verify", ["91110108MA01ABCD1X"]))
    for headers in (seller, {}):  # {}: the client's admin key
        answer = await _ask(cli, headers, ORDINARY)
        assert "withheld" not in answer
        assert answer["invoice"]["total_amount"] == "217.62"


async def test_vietnamese_lookups_are_not_touched(cli: Client, stranger: dict[str, str]) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice()]))
    assert (await resp.json())["result"] == "accepted"
    answer = await _ask(cli, stranger, {k: str(v) for k, v in vn_key(1).items()})
    assert answer["status"] == "valid"
    assert "withheld" not in answer


async def test_off_by_setting(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "off"), "INVOICE_CN_SECOND_FACTOR": "off"}
    )
    async with open_access_db(settings.access_path) as conn:
        admin, _ = await KeyStore(conn).create(Role.ADMIN, name="tests")
        verifier, _ = await KeyStore(conn).create(Role.VERIFY, name="stranger")
    client = await aiohttp_client(create_app(settings))
    resp = await client.post(
        "/api/v1/packages", json=package([cn_invoice()]), headers=bearer(admin)
    )
    assert (await resp.json())["result"] == "accepted"
    answer = await _ask(client, bearer(verifier), ORDINARY)
    assert "withheld" not in answer
    assert answer["invoice"]["total_amount"] == "217.62"
