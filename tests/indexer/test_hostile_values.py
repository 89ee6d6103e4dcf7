"""Issue 15 point 1 at the package level: whatever one field of a package holds (exponents of
any size, NaN, thousands of digits, other scripts' digits, whitespace only, NUL, lone
surrogates, huge or negative integers, wrong types), the package is answered: refused whole
(`PackageError`, a 4xx) or given a notice whose items are accepted or rejected with their own
rule violations, and that notice encodes the way the journal and the answer encode it.
Never another exception: one such exception at apply time used to wedge the intake journal.

The JSON path goes through the body bytes (`read_submission`), as a post or a journal entry
does; the VN XML path through `tests.xml_factories`. Each example runs against one real
SQLite store, kept for the module (accepted invoices are really written).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from indexer.codec import json_text
from indexer.intake import Intake
from indexer.package import PackageError
from indexer.rules import RuleConfig
from indexer.signature import TrustAnchors, check_seller_signature
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from indexer.submission import BodyFormat, read_submission
from tests.factories import cancel, cn_digital, cn_invoice, vn_invoice, vn_key
from tests.pki import make_pki
from tests.xml_factories import hdon, sign_hdon, xml_package

NOW = datetime(2026, 11, 23, tzinfo=UTC)

#: The values issue 15 names, and their neighbours.
HOSTILE_TEXT = [
    "1e999999", "1E+999999999", "-1e999999", "1e-999999999", "0E+999999999", "NaN", "sNaN",
    "-Infinity", "9" * 4301, "1" + "0" * 5000, "0." + "5" * 3000, "²", "①", "٣٤٥", "１２３",
    "۱۲", "𝟙", " ", "\t\n ", "", "\x00", "a\x00b", "\ud800", "x\udfff", "\x1b[2J", "-1",
    "+5", "1_000", "0x10", "12.5", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
    "２０２２-05-15T09:30:00+07:00", "2022-05-15T09:30:00\x00+07:00", "99999-01-01",
    "C22TAA\x00", "0100109106\ud800", "vn:0100109106:1:C22TAA:²", "x" * 5000,
]
HOSTILE_INTS = [2**64, -(2**63), 2**63, 10**4000, -1, 0]
HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(HOSTILE_TEXT), st.sampled_from(HOSTILE_INTS),
    st.integers(), st.booleans(), st.none(), st.floats(),
    st.text(max_size=30), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
#: XML text holds no NUL, other controls or lone surrogates: lxml refuses to build them.
XML_HOSTILE: st.SearchStrategy[str] = st.one_of(
    st.sampled_from([t for t in HOSTILE_TEXT
                     if t.isprintable() or t.strip() == ""]).filter(
        lambda t: "\x00" not in t and not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
    st.integers().map(str),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=30))

VN_FIELDS = list(vn_invoice(1))
CN_FIELDS = list(cn_invoice())
NOTICE_FIELDS = ["kind", "key", "reason", "notice_id", "key.seller_tax_id", "key.template",
                 "key.series", "key.number"]
ORIGINAL_FIELDS = ["original", "original.seller_tax_id", "original.template",
                   "original.series", "original.number"]
ENVELOPE_FIELDS = ["package_id", "sender", "declared_count", "invoices", "notices"]


@dataclass
class World:
    runner: asyncio.Runner
    store: SqliteStore
    intake: Intake


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path: Path = tmp_path_factory.mktemp("hostile") / "store.sqlite3"
    with asyncio.Runner() as runner:
        opened = open_sqlite_store(path)
        store = runner.run(opened.__aenter__())
        try:
            yield World(runner, store, Intake(store, RuleConfig(), clock=lambda: NOW))
        finally:
            runner.run(opened.__aexit__(None, None, None))


_ids = iter(range(10**9))


def _put(target: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        inner = target.get(head)
        if not isinstance(inner, dict):
            inner = target[head] = {}
        _put(inner, rest, value)
    else:
        target[head] = value


def _package(item: dict[str, Any], *, notice: bool = False) -> dict[str, Any]:
    return {"package_id": f"HOSTILE-{next(_ids)}", "sender": "0101300842",
            "declared_count": 1, "invoices": [] if notice else [item],
            "notices": [item] if notice else []}


def _answer(world: World, body: bytes, fmt: BodyFormat,
            digest: str | None = None) -> dict[str, Any] | None:
    """The notice for `body`, or None when the package is refused whole (a `PackageError`,
    answered 4xx). Anything else raised fails the property."""
    try:
        submission = read_submission(body, fmt, max_items=100, digest=digest)
        result = world.runner.run(world.intake.ingest(submission.package,
                                                      submission.originals))
    except PackageError:  # e.g. a hostile package id met twice: the id conflict, a 409
        return None
    notice = result.notice
    json_text(notice)  # what the journal and the response do with it: must not raise
    assert notice["result"] in ("accepted", "rejected", "partial"), notice
    for item in notice["items"]:
        assert item["result"] in ("accepted", "rejected"), item
        if item["result"] == "rejected":
            assert item["errors"], item
    return notice


def _json_body(data: dict[str, Any]) -> bytes:
    # ensure_ascii keeps a lone surrogate as its \\ud800 escape, which json.loads gives back
    return json.dumps(data, ensure_ascii=True).encode()


_SETTINGS = settings(max_examples=300, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


@_SETTINGS
@given(field=st.sampled_from(VN_FIELDS + ORIGINAL_FIELDS), value=HOSTILE,
       kind=st.sampled_from(["original", "replacement", "adjustment"]))
def test_any_value_of_any_vn_invoice_field_gets_a_notice(world: World, field: str, value: Any,
                                                         kind: str) -> None:
    invoice = vn_invoice(7, kind=kind)
    if kind != "original":
        invoice["original"] = vn_key(3)
    _put(invoice, field, value)
    _answer(world, _json_body(_package(invoice)), BodyFormat.JSON)


@_SETTINGS
@given(field=st.sampled_from(CN_FIELDS), value=HOSTILE, digital=st.booleans())
def test_any_value_of_any_cn_invoice_field_gets_a_notice(world: World, field: str, value: Any,
                                                         digital: bool) -> None:
    invoice = cn_digital() if digital else cn_invoice()
    invoice[field] = value
    _answer(world, _json_body(_package(invoice)), BodyFormat.JSON)


@_SETTINGS
@given(field=st.sampled_from(NOTICE_FIELDS), value=HOSTILE)
def test_any_value_of_any_notice_field_gets_a_notice(world: World, field: str,
                                                     value: Any) -> None:
    notice = cancel(5)
    _put(notice, field, value)
    _answer(world, _json_body(_package(notice, notice=True)), BodyFormat.JSON)


@_SETTINGS
@given(field=st.sampled_from(ENVELOPE_FIELDS), value=HOSTILE)
def test_any_value_of_any_envelope_field_is_answered(world: World, field: str,
                                                     value: Any) -> None:
    data = _package(vn_invoice(9))
    data[field] = value
    _answer(world, _json_body(data), BodyFormat.JSON)


XML_FIELDS = [f for f in VN_FIELDS if f not in ("scheme", "kind")]


@_SETTINGS
@given(field=st.sampled_from([*XML_FIELDS, "package_id", "sender", "count"]),
       value=XML_HOSTILE)
def test_any_value_of_any_vn_xml_field_is_answered(world: World, field: str,
                                                   value: str) -> None:
    invoice = vn_invoice(11)
    envelope: dict[str, Any] = {"package_id": f"VHOSTILE{next(_ids)}"}
    if field in ("package_id", "sender", "count"):
        envelope[field] = value
    else:
        invoice[field] = value
    _answer(world, xml_package([invoice], **envelope), BodyFormat.XML)


@pytest.mark.parametrize(("field", "value"), [
    ("amount_before_tax", "1e999999"), ("total_amount", "1E+999999999"),
    ("number", "9" * 4301), ("currency", " "), ("tax_amount", "sNaN"),
    ("seller_name", "a\x00b"), ("buyer_name", "\ud800"), ("issued_at", "٢٠٢٢-05-15T09:30:00+07:00"),
    ("issued_at", "0001-01-01T00:00:00+14:00"), ("authority_code", " "),
])
def test_the_issue_inputs_are_item_violations(world: World, field: str, value: Any) -> None:
    """The examples of issue 15 reject the item with a rule of its own, not the package. As
    the journal reads its entries (their digest known, so a lone surrogate is not caught
    by computing it: a fresh post refuses it whole as `package.invalid_text`)."""
    invoice = vn_invoice(13)
    invoice[field] = value
    notice = _answer(world, _json_body(_package(invoice)), BodyFormat.JSON, digest="known")
    assert notice is not None
    assert notice["items"][0]["result"] == "rejected"
    assert {e["field"] for e in notice["items"][0]["errors"]} == {field}


@pytest.mark.parametrize("count", [2**64, "1", "²", -1, 10**18])
def test_a_declared_count_out_of_range_refuses_the_package_as_invalid(world: World,
                                                                     count: Any) -> None:
    data = _package(vn_invoice(15))
    data["declared_count"] = count
    with pytest.raises(PackageError) as refused:
        read_submission(_json_body(data), BodyFormat.JSON, max_items=100)
    assert refused.value.code == "package.count_invalid"
    json_text(refused.value.details)


@pytest.mark.parametrize("count", ["²", "99999999999999999999", "١"])
def test_an_xml_count_of_other_digits_refuses_the_package(count: str) -> None:
    with pytest.raises(PackageError) as refused:
        read_submission(xml_package([vn_invoice(17)], count=count), BodyFormat.XML,
                        max_items=100)
    assert refused.value.code == "package.count_invalid"


# --- the seller's signature (VN XML): whatever its elements hold, violations, no exception

@pytest.fixture(scope="module")
def signed_hdon() -> tuple[bytes, TrustAnchors]:
    pki = make_pki()
    element = sign_hdon(hdon(vn_invoice(21)), pki.seller_key, [pki.leaf()])
    return etree.tostring(element), TrustAnchors.from_pem(pki.anchors_pem, "test root")


@_SETTINGS
@given(position=st.integers(min_value=0, max_value=10_000), value=XML_HOSTILE,
       attribute=st.booleans())
def test_any_value_in_a_signed_invoice_gives_violations_never_an_exception(
        signed_hdon: tuple[bytes, TrustAnchors], position: int, value: str,
        attribute: bool) -> None:
    body, anchors = signed_hdon
    root = etree.fromstring(body)
    elements = list(root.iter())
    target = elements[position % len(elements)]
    if attribute and target.attrib:
        name = sorted(target.attrib)[position % len(target.attrib)]
        target.set(name, value)
    else:
        target.text = value
    violations = check_seller_signature(etree.tostring(target.getroottree()),
                                        seller_tax_id="0100109106", series="C22TAA",
                                        anchors=anchors, cfg=RuleConfig(), now=NOW)
    json_text([v.as_dict() for v in violations])
