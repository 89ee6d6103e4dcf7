"""Property tests: the MST check digit and key parsing hold for every input, not just the
spec's worked examples."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from indexer import cn, vn
from indexer.keys import CnKey, VnKey, cn_key, key_from_doc_id, vn_key
from indexer.rules import RuleConfig

CFG = RuleConfig()
PREFIX = st.from_regex(r"[0-9]{2}(?!0000000)[0-9]{7}", fullmatch=True)
SERIES = st.from_regex(r"[CK](2[1-9]|[3-9][0-9])[TDLMNBGHX][A-Z0-9]{2}", fullmatch=True)


@given(PREFIX)
def test_exactly_one_check_digit_completes_a_prefix_or_none_does(prefix: str) -> None:
    digit = vn.mst_check_digit(prefix)
    valid = [d for d in "0123456789" if vn.mst_valid(prefix + d)]
    assert valid == ([] if digit is None else [str(digit)])


@given(PREFIX, st.integers(1, 999))
def test_branch_mst_follows_its_parent(prefix: str, branch: int) -> None:
    digit = vn.mst_check_digit(prefix)
    if digit is None:
        return
    parent = f"{prefix}{digit}"
    assert vn.mst_valid(f"{parent}-{branch:03d}")
    assert vn.mst_valid(f"{parent}{branch:03d}")
    assert vn.normalise_tax_id(f"{parent}{branch:03d}") == f"{parent}-{branch:03d}"


@given(PREFIX, st.integers(0, 9))
def test_any_single_digit_change_of_the_check_digit_is_caught(prefix: str, wrong: int) -> None:
    digit = vn.mst_check_digit(prefix)
    if digit is None or wrong == digit:
        return
    assert not vn.mst_valid(f"{prefix}{wrong}")


@given(PREFIX, st.sampled_from("123456789"), SERIES, st.integers(1, 99_999_999))
def test_vn_keys_parse_and_round_trip_through_doc_ids(prefix: str, template: str, series: str,
                                                      number: int) -> None:
    digit = vn.mst_check_digit(prefix)
    if digit is None:
        return
    raw = {"seller_tax_id": f"{prefix}{digit}", "template": template, "series": series,
           "number": str(number).zfill(8)}
    key, problems = vn_key(raw, CFG)
    assert problems == []
    assert key == VnKey(f"{prefix}{digit}", template, series, number)
    assert key_from_doc_id(key.doc_id) == key


@given(st.one_of(st.from_regex(r"[0-9]{10}", fullmatch=True),
                 st.from_regex(r"[0-9]{12}", fullmatch=True)),
       st.from_regex(r"[0-9]{8}", fullmatch=True))
def test_cn_coded_keys_round_trip(code: str, number: str) -> None:
    key, problems = cn_key({"invoice_code": code, "invoice_number": number}, CFG)
    assert problems == []
    assert key == CnKey(code, number)
    assert key_from_doc_id(key.doc_id) == key


@given(st.from_regex(r"[0-9]{20}", fullmatch=True))
def test_cn_digital_keys_round_trip(number: str) -> None:
    key, problems = cn_key({"invoice_number": number}, CFG)
    assert key == CnKey(None, number)
    assert problems == []
    assert key_from_doc_id(key.doc_id) == key
    assert cn.type_from_number20(number) in {"32", "51", "61"}


@given(st.text(max_size=30))
def test_key_parsing_never_crashes(text: str) -> None:
    for raw in ({"seller_tax_id": text, "template": text, "series": text, "number": text},
                {"invoice_code": text, "invoice_number": text}):
        vn_key(raw, CFG)
        cn_key(raw, CFG)
    key_from_doc_id(text)
