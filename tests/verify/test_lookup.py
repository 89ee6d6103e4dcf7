"""GET /api/v1/invoices/lookup: every key form, every status, every parameter error."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fallback.lookup.fetch import CodeOwners
from indexer.keys import VnKey
from indexer.keys import vn_key as validate_vn_key
from indexer.model import Amounts, Invoice
from indexer.rules import RuleConfig
from tests.conftest import Client
from tests.factories import (
    BUYER,
    SELLER,
    authority_code,
    cancel,
    cn_digital,
    cn_invoice,
    package,
    vn_invoice,
    vn_key,
)
from verify.lookup.query import VnPrefixes

URL = "/api/v1/invoices/lookup"
CASH_CODE = "M1-22-ABCDE-00000000009"
ANSWER_FIELDS = {"status", "scheme", "key", "invoice", "mismatches", "related", "source",
                 "degraded", "as_of", "gap_id"}


@pytest.fixture
async def loaded(cli: Client) -> Client:
    resp = await cli.post("/api/v1/packages", json=package([
        vn_invoice(1), vn_invoice(2), vn_invoice(3), vn_invoice(4),
        vn_invoice(9, series="C22MAA", authority_code=CASH_CODE),
        vn_invoice(5, kind="replacement", original=vn_key(2)),
        vn_invoice(6, kind="adjustment", original=vn_key(3), amount_before_tax="-100",
                   tax_amount="-10", total_amount="-110"),
        cn_invoice(), cn_digital(),
    ], [cancel(4, reason="sai người mua")]))
    notice = await resp.json()
    assert notice["result"] == "accepted", notice
    return cli


async def get(cli: Client, status: int = 200, **params: Any) -> dict[str, Any]:
    resp = await cli.get(URL, params={k: str(v) for k, v in params.items()})
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_valid_by_vn_key_has_full_answer_shape(loaded: Client) -> None:
    answer = await get(loaded, **vn_key(1), total_amount="1100000", amount="1000000.00",
                       issued_on="2022-05-15", buyer_tax_id=BUYER)
    assert set(answer) == ANSWER_FIELDS
    assert answer["status"] == "valid"
    assert answer["scheme"] == "vn"
    assert answer["key"] == vn_key(1)
    assert (answer["source"], answer["degraded"], answer["gap_id"]) == ("primary", False, None)
    assert answer["as_of"].endswith("Z")
    invoice = answer["invoice"]
    assert invoice["id"] == f"vn:{SELLER}:1:C22TAA:1"
    assert invoice["total_amount"] == "1100000"
    assert invoice["authority_code"] == authority_code(1)
    assert invoice["issued_at"] == "2022-05-15T09:30:00+07:00"
    assert invoice["seller_name"] == "Công ty Cổ phần Thử nghiệm"
    assert (answer["mismatches"], answer["related"]) == ([], [])


async def test_series_written_with_template_prefix_finds_the_invoice(
        loaded: Client) -> None:
    answer = await get(loaded, **vn_key(1, series="1C22TAA"))
    assert answer["status"] == "valid"


@pytest.mark.parametrize(("params", "field", "given", "recorded"), [
    ({"total_amount": "1100001"}, "total_amount", "1100001", "1100000"),
    ({"amount": "999999"}, "amount", "999999", "1000000"),
    ({"issued_on": "2022-05-16"}, "issued_on", "2022-05-16", "2022-05-15"),
    ({"buyer_tax_id": "0102671977"}, "buyer_tax_id", "0102671977", BUYER),
])
async def test_mismatch_lists_each_differing_field(loaded: Client, params: dict[str, str],
                                                   field: str, given: str,
                                                   recorded: str) -> None:
    answer = await get(loaded, **vn_key(1), **params)
    assert answer["status"] == "mismatch"
    assert answer["mismatches"] == [{"field": field, "given": given, "recorded": recorded}]


async def test_several_mismatches_at_once(loaded: Client) -> None:
    answer = await get(loaded, **vn_key(1), total_amount="1", issued_on="2022-01-01")
    assert [m["field"] for m in answer["mismatches"]] == ["total_amount", "issued_on"]


async def test_authority_code_forms(loaded: Client) -> None:
    answer = await get(loaded, authority_code=authority_code(1).lower())
    assert answer["status"] == "valid"
    assert answer["key"] == vn_key(1)
    cash = await get(loaded, authority_code=CASH_CODE)
    assert cash["key"] == vn_key(9, series="C22MAA")
    missing = await get(loaded, authority_code=authority_code(77))
    assert missing["status"] == "not_found"
    assert missing["key"] == {"authority_code": authority_code(77)}


async def test_cancelled_replaced_adjusted_carry_related(loaded: Client) -> None:
    cancelled = await get(loaded, **vn_key(4))
    assert cancelled["status"] == "cancelled"
    [rel] = cancelled["related"]
    assert (rel["relation"], rel["notice_id"], rel["reason"]) == (
        "cancelled_by", "04SS-2022-0001", "sai người mua")
    replaced = await get(loaded, **vn_key(2))
    assert replaced["status"] == "replaced"
    assert [(r["relation"], r["key"]) for r in replaced["related"]] == [
        ("replaced_by", vn_key(5))]
    adjusted = await get(loaded, **vn_key(3))
    assert adjusted["status"] == "adjusted"
    assert [(r["relation"], r["key"]) for r in adjusted["related"]] == [
        ("adjusted_by", vn_key(6))]
    replacement = await get(loaded, **vn_key(5))
    assert replacement["status"] == "valid"
    assert [(r["relation"], r["key"]) for r in replacement["related"]] == [
        ("replaces", vn_key(2))]
    assert replacement["invoice"]["kind"] == "replacement"


async def test_lifecycle_status_wins_over_mismatch(loaded: Client) -> None:
    answer = await get(loaded, **vn_key(4), total_amount="1")
    assert answer["status"] == "cancelled"
    assert answer["mismatches"][0]["field"] == "total_amount"


async def test_cn_code_and_number_with_check_code(loaded: Client) -> None:
    key = {"code": "013002200211", "number": "81532753"}
    assert (await get(loaded, **key, check_code="383169"))["status"] == "valid"
    assert (await get(loaded, **key, check_code="49753264642977383169"))["status"] == "valid"
    wrong = await get(loaded, **key, check_code="000000", amount="205.3")
    assert wrong["status"] == "mismatch"
    # The recorded check code is never echoed back.
    assert wrong["mismatches"] == [{"field": "check_code", "given": "000000", "recorded": None}]
    assert "check_code" not in wrong["invoice"]
    assert wrong["key"] == {"invoice_code": "013002200211", "invoice_number": "81532753"}
    assert wrong["invoice"]["type_code"] == "10"


async def test_cn_digital_number_alone(loaded: Client) -> None:
    answer = await get(loaded, number="23442000000014209621", total_amount="112")
    assert answer["status"] == "valid"
    assert answer["scheme"] == "cn"
    assert answer["invoice"]["type_code"] == "32"
    missing = await get(loaded, number="23442000000014209622")
    assert missing["status"] == "not_found"
    assert missing["key"] == {"invoice_code": None, "invoice_number": "23442000000014209622"}


async def test_not_found_on_valid_vn_key(loaded: Client) -> None:
    answer = await get(loaded, **vn_key(100))
    assert answer["status"] == "not_found"
    assert (answer["invoice"], answer["key"], answer["source"]) == (None, vn_key(100), "primary")


@pytest.mark.parametrize(("query", "code"), [
    ({}, "missing_key"),
    ({"colour": "red"}, "unknown_parameter"),
    ({**vn_key(1), "seller_tax_id": "0100233480"}, "invalid_key"),
    ({**vn_key(1), "series": "X22TAA"}, "invalid_key"),
    ({**vn_key(1), "template": "0"}, "invalid_key"),
    ({**vn_key(1), "number": "0"}, "invalid_key"),
    ({**vn_key(1), "number": "abc"}, "invalid_key"),
    ({"seller_tax_id": SELLER, "series": "C22TAA"}, "invalid_key"),
    ({"authority_code": "XYZ"}, "invalid_key"),
    ({"authority_code": authority_code(1), "number": "1"}, "ambiguous_key"),
    ({**vn_key(1), "code": "013002200211"}, "ambiguous_key"),
    ({"number": "81532753"}, "invalid_key"),
    ({"code": "0130022002", "number": "23442000000014209621"}, "invalid_key"),
    ({"code": "12345", "number": "81532753"}, "invalid_key"),
    ({**vn_key(1), "total_amount": "1.5e"}, "invalid_parameter"),
    ({**vn_key(1), "total_amount": "NaN"}, "invalid_parameter"),
    ({**vn_key(1), "issued_on": "15/05/2022"}, "invalid_parameter"),
    ({"code": "013002200211", "number": "81532753", "check_code": "12345"},
     "invalid_parameter"),
])
async def test_bad_queries_are_400_with_a_code(loaded: Client, query: dict[str, str],
                                               code: str) -> None:
    body = await get(loaded, 400, **query)
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_repeated_parameter_is_refused(loaded: Client) -> None:
    resp = await loaded.get(f"{URL}?number=1&number=2&seller_tax_id={SELLER}&template=1"
                            "&series=C22TAA")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "repeated_parameter"


@pytest.mark.parametrize(("query", "code", "parameter"), [
    # int() refuses more than 4,300 digits: this was a 500 in the key parser
    ({**vn_key(1), "number": "1" * 5000}, "invalid_parameter", "number"),
    ({"number": "9" * 4400}, "invalid_parameter", "number"),
    ({**vn_key(1), "number": "²"}, "invalid_key", None),
    ({**vn_key(1), "number": "①"}, "invalid_key", None),
    ({**vn_key(1), "number": "٣"}, "invalid_key", None),
    ({**vn_key(1), "number": "３"}, "invalid_key", None),
    ({"code": "013002200211", "number": "²" * 8}, "invalid_key", None),
    ({"number": "２" * 20}, "invalid_key", None),
    ({**vn_key(1), "buyer_tax_id": "01\x00"}, "invalid_parameter", "buyer_tax_id"),
    ({**vn_key(1), "issued_on": "٢٠٢٢-٠٥-١٥"}, "invalid_parameter", "issued_on"),
    ({**vn_key(1), "seller_tax_id": " "}, "invalid_key", None),
])
async def test_hostile_key_values_are_400_naming_the_parameter(
        loaded: Client, query: dict[str, str], code: str, parameter: str | None) -> None:
    body = await get(loaded, 400, **query)
    assert body["error"]["code"] == code
    if parameter is not None:
        assert body["error"]["details"]["parameter"] == parameter
    assert (await get(loaded, **vn_key(1)))["status"] == "valid"


def test_a_known_prefix_with_a_huge_number_goes_through_the_full_check() -> None:
    cfg = RuleConfig()
    prefixes = VnPrefixes()
    params = {k: str(v) for k, v in vn_key(1).items()}
    key, _ = validate_vn_key(params, cfg)
    assert key is not None
    prefixes.learn(params, key, cfg)
    assert prefixes.key({**params, "number": "7"}, cfg) == VnKey(SELLER, "1", "C22TAA", 7)
    for number in ("1" * 5000, "²", "٣", "100000000", "0", ""):
        assert prefixes.key({**params, "number": number}, cfg) is None


@pytest.mark.parametrize("query", [
    vn_key(1, series="C22TAA' OR '1'='1"),
    vn_key(1, seller_tax_id="0100109106' --"),
    {"authority_code": "00" + "A" * 31 + "'"},
    {"code": "%", "number": "81532753"},
    {"number": '{"match_all": {}}'},
])
async def test_injection_shaped_input_is_only_a_bad_key(loaded: Client,
                                                        query: dict[str, str]) -> None:
    body = await get(loaded, 400, **query)
    assert body["error"]["code"] == "invalid_key"
    assert (await get(loaded, **vn_key(1)))["status"] == "valid"


class CountingStore:
    """Invoices by id and by code, counting the reads of each kind."""

    backend = "fake"

    def __init__(self, *invoices: Invoice) -> None:
        self.by_id = {inv.doc_id: inv for inv in invoices}
        self.by_id_reads = 0
        self.by_code_reads = 0

    async def get_invoice(self, doc_id: str) -> Invoice | None:
        self.by_id_reads += 1
        return self.by_id.get(doc_id)

    async def find_by_authority_code(self, code: str) -> Invoice | None:
        self.by_code_reads += 1
        return next((inv for inv in self.by_id.values() if inv.authority_code == code), None)


def _invoice(number: int, code: str | None) -> Invoice:
    return Invoice(key=VnKey(SELLER, "1", "C22TAA", number),
                   issued_at=datetime(2022, 5, 15, 9, tzinfo=timezone(timedelta(hours=7))),
                   currency="VND", amounts=Amounts(Decimal(100), Decimal(10), Decimal(110)),
                   package_id="PKG-1", seller_tax_id=SELLER, authority_code=code)


async def test_a_known_code_is_read_by_its_document_id() -> None:
    store = CountingStore(_invoice(1, authority_code(1)))
    owners = CodeOwners()
    for _ in range(3):
        found = await owners.fetch(store, authority_code(1))  # type: ignore[arg-type]
        assert found is not None
        assert found.authority_code == authority_code(1)
    assert (store.by_code_reads, store.by_id_reads) == (1, 2)
    assert await owners.fetch(store, authority_code(2)) is None  # type: ignore[arg-type]
    assert await owners.fetch(store, authority_code(2)) is None  # type: ignore[arg-type]
    assert store.by_code_reads == 3  # a miss teaches nothing: asked by code each time


async def test_a_hint_is_trusted_only_when_the_record_carries_the_code() -> None:
    owners = CodeOwners()
    first = CountingStore(_invoice(1, authority_code(1)))
    assert await owners.fetch(first, authority_code(1)) is not None  # type: ignore[arg-type]
    # Another store where that document has no such code: the hint is not believed.
    other = CountingStore(_invoice(1, None), _invoice(2, authority_code(1)))
    found = await owners.fetch(other, authority_code(1))  # type: ignore[arg-type]
    assert found is not None
    assert found.doc_id == _invoice(2, None).doc_id
    assert (other.by_id_reads, other.by_code_reads) == (1, 1)
    gone = CountingStore()
    assert await owners.fetch(gone, authority_code(1)) is None  # type: ignore[arg-type]


async def test_code_owners_are_bounded() -> None:
    owners = CodeOwners(max_codes=2)
    store = CountingStore(*(_invoice(n, authority_code(n)) for n in range(1, 5)))
    for n in range(1, 5):
        assert await owners.fetch(store, authority_code(n)) is not None  # type: ignore[arg-type]
    assert len(owners._owners) <= 2


_PREFIXES = [(SELLER, "1", "C22TAA"), (SELLER, "1", "1C22TAA"), (SELLER, "2", "c22taa"),
             ("0100109106-001", "1", "K23TXY"), ("0100109107", "1", "C22TAA"),
             (SELLER, "1", "C22FAA"), (SELLER, "0", "C22TAA"), ("012345678901", "1", "C24MAB")]


@settings(max_examples=400, deadline=None)
@given(prefix=st.sampled_from(_PREFIXES),
       number=st.one_of(st.integers(min_value=-5, max_value=100_000_005).map(str),
                        st.text(alphabet="0123456789 +-٣²a", max_size=10)))
def test_known_prefixes_build_exactly_the_key_vn_key_builds(prefix: tuple[str, str, str],
                                                            number: str) -> None:
    cfg = RuleConfig()
    params = dict(zip(("seller_tax_id", "template", "series", "number"), (*prefix, number),
                      strict=True))
    full, _ = validate_vn_key(params, cfg)
    prefixes = VnPrefixes()
    learned, _ = validate_vn_key({**params, "number": "1"}, cfg)
    if learned is not None:
        prefixes.learn(params, learned, cfg)
    fast = prefixes.key(params, cfg)
    assert fast is None or fast == full
    if full is not None and learned is not None and number.isascii() and number.isdigit():
        assert fast == full  # the fast path is taken whenever it can be
    assert prefixes.key(params, RuleConfig()) is None  # another configuration: not known


@pytest.mark.parametrize(("callback", "code"), [
    ("http://example.com/%00x", "invalid_parameter"),  # NUL was accepted and kept with a gap
    ("http://example.com/\x07", "invalid_parameter"),
    ("http://example.com/" + "a" * 2100, "invalid_parameter"),
])
async def test_callback_url_is_read_with_the_lookup_parameters(loaded: Client, callback: str,
                                                               code: str) -> None:
    resp = await loaded.get(URL, params={**{k: str(v) for k, v in vn_key(1).items()},
                                         "callback_url": callback.replace("%00", "\x00")})
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert (error["code"], error["details"]["parameter"]) == (code, "callback_url")


async def test_an_empty_callback_url_means_none_and_two_are_refused(loaded: Client) -> None:
    key = "&".join(f"{k}={v}" for k, v in vn_key(1).items())
    assert (await get(loaded, **vn_key(1), callback_url=""))["status"] == "valid"
    resp = await loaded.get(f"{URL}?{key}&callback_url=https://a.example/&callback_url="
                            "https://b.example/")
    assert (await resp.json())["error"]["code"] == "repeated_parameter"
