"""Registry parsing. The stores are in tests/indexer/store/test_registry_contract.py."""

from __future__ import annotations

from datetime import date

import pytest

from indexer.registry import (
    Registration,
    RegistryError,
    Taxpayer,
    parse_registry,
    parse_registry_csv,
    parse_registry_json,
    record_status,
    taxpayer_from_dict,
    taxpayer_to_dict,
)

TAXPAYER = {"tax_id": "0100109106", "name": "Công ty Thử nghiệm", "status": "00",
            "einvoice_stopped": True, "stopped_from": "2022-06-01", "stopped_until": "2022-06-30",
            "cash_register_code_ranges": ["ABCDE"],
            "registrations": [{"template": "1", "series": "C22TAA", "from": "2022-01-01"}]}
PROVIDER = {"provider_id": "0101300842", "name": "T-VAN", "valid_from": "2021-07-01",
            "valid_to": "2027-12-31"}


def test_json_file_parses_every_field() -> None:
    parsed = parse_registry_json({"taxpayers": [TAXPAYER], "providers": [PROVIDER]})
    [taxpayer] = parsed.taxpayers
    assert taxpayer.status == "00"
    assert taxpayer.cash_register_code_ranges == ("ABCDE",)
    assert taxpayer.registrations == (Registration("1", "C22TAA", date(2022, 1, 1)),)
    assert taxpayer.stopped_on(date(2022, 6, 15))
    assert not taxpayer.stopped_on(date(2022, 7, 1))
    [provider] = parsed.providers
    assert provider.valid_on(date(2027, 12, 31))
    assert not provider.valid_on(date(2028, 1, 1))


def test_stop_without_dates_is_open_ended() -> None:
    assert Taxpayer("0100109106", "x", "00", einvoice_stopped=True).stopped_on(date(2000, 1, 1))


def test_csv_files_for_taxpayers_and_providers() -> None:
    taxpayers = parse_registry_csv(
        "tax_id,name,status,einvoice_stopped,cash_register_code_ranges,registrations\n"
        "0100109106,A,02,no,ABCDE;FGHIJ,1:C22TAA:2022-01-01;2:K22TBB:2022-01-01:2022-12-31\n")
    [t] = taxpayers.taxpayers
    assert t.cash_register_code_ranges == ("ABCDE", "FGHIJ")
    assert t.registrations[1] == Registration("2", "K22TBB", date(2022, 1, 1),
                                              date(2022, 12, 31))
    providers = parse_registry(b"provider_id,name,valid_from,valid_to\nP1,X,2021-01-01,\n",
                               "text/csv")
    assert providers.providers[0].valid_to is None


@pytest.mark.parametrize(("data", "message"), [
    ([], "JSON object"),
    ({"taxpayers": {}}, "must be lists"),
    ({"taxpayers": [{**TAXPAYER, "tax_id": "0100109107"}]}, "not a valid MST"),
    ({"taxpayers": [{**TAXPAYER, "status": "08"}]}, "status '08'"),
    ({"taxpayers": [{**TAXPAYER, "cash_register_code_ranges": ["ABC"]}]}, "5 letters"),
    ({"taxpayers": [{**TAXPAYER, "registrations": [{"template": "1", "series": "X",
                                                    "from": "2022-01-01"}]}]}, "invalid"),
    ({"taxpayers": [{**TAXPAYER, "einvoice_stopped": "maybe"}]}, "true/false"),
    ({"providers": [{**PROVIDER, "valid_from": "01/07/2021"}]}, "YYYY-MM-DD"),
    ({"providers": [{**PROVIDER, "provider_id": ""}]}, "provider_id is required"),
])
def test_bad_registry_files_name_the_problem(data: object, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_registry_json(data)


def test_bad_csv_and_bytes() -> None:
    with pytest.raises(RegistryError, match="tax_id or a provider_id"):
        parse_registry_csv("name\nx\n")
    with pytest.raises(RegistryError, match="template:series:from"):
        parse_registry_csv("tax_id,name,status,registrations\n0100109106,A,00,1:C22TAA\n")
    with pytest.raises(RegistryError, match="UTF-8"):
        parse_registry(b"\xff\xfe", "text/csv")
    with pytest.raises(RegistryError, match="not valid JSON"):
        parse_registry(b"{", "application/json")



# --- hostile files: every field of the file, wrong types and adversarial text -------------

import contextlib  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from functools import partial  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: Values of every JSON type, and text Python's parsers accept or choke on (issue 15).
HOSTILE_TEXT = st.sampled_from(["", " ", "\x00", "\ud800", "²", "①", "٣", "３", "1e999999",
                                "NaN", "2022-13-45", "２０２２-01-01", "x" * 5000, "=cmd"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=6)
TAXPAYER_FIELDS = [*TAXPAYER, "status_since"]
REGISTRATION_FIELDS = ["template", "series", "from", "to"]


def _replaced(record: Mapping[str, object], name: str, value: object) -> dict[str, object]:
    return {**record, name: value}


def _only_registry_errors(parse: Callable[[], object]) -> None:
    """The parse either succeeds or raises RegistryError: anything else fails the test."""
    with contextlib.suppress(RegistryError):
        parse()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TAXPAYER_FIELDS), JSON_VALUES)
def test_any_value_in_any_taxpayer_field_is_parsed_or_refused(name: str, value: object) -> None:
    _only_registry_errors(lambda: parse_registry_json(
        {"taxpayers": [_replaced(TAXPAYER, name, value)]}))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REGISTRATION_FIELDS), JSON_VALUES)
def test_any_value_in_any_registration_field_is_parsed_or_refused(name: str,
                                                                  value: object) -> None:
    reg = _replaced({"template": "1", "series": "C22TAA", "from": "2022-01-01"}, name, value)
    _only_registry_errors(lambda: parse_registry_json(
        {"taxpayers": [{**TAXPAYER, "registrations": [reg]}]}))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(PROVIDER)), JSON_VALUES)
def test_any_value_in_any_provider_field_is_parsed_or_refused(name: str, value: object) -> None:
    _only_registry_errors(lambda: parse_registry_json(
        {"providers": [_replaced(PROVIDER, name, value)]}))


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_any_shape_of_file_or_record_is_parsed_or_refused(value: object) -> None:
    for data in (value, {"taxpayers": value}, {"providers": value}, {"taxpayers": [value]},
                 {"providers": [value]}, {"taxpayers": [{**TAXPAYER, "registrations": value}]},
                 {"taxpayers": [{**TAXPAYER, "registrations": [value]}]}):
        _only_registry_errors(partial(parse_registry_json, data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_csv_or_json_are_parsed_or_refused(body: bytes) -> None:
    for prefix in (b"", b"tax_id,name,status,registrations\n", b"provider_id,valid_from\n"):
        _only_registry_errors(partial(parse_registry, prefix + body, "text/csv"))
    _only_registry_errors(lambda: parse_registry(body, "application/json"))


@pytest.mark.parametrize(("data", "message"), [
    ({"taxpayers": [None]}, r"taxpayers\[0\]: must be an object, not null"),
    ({"taxpayers": [1]}, r"taxpayers\[0\]: must be an object, not int"),
    ({"providers": ["P1"]}, r"providers\[0\]: must be an object, not str"),
    ({"taxpayers": [{**TAXPAYER, "tax_id": 100109106}]}, "tax_id must be text, not int"),
    ({"taxpayers": [{**TAXPAYER, "registrations": [None]}]}, r"registrations\[0\]: must be"),
    ({"taxpayers": [{**TAXPAYER, "registrations": {"a": 1}}]}, "registrations must be a list"),
    ({"taxpayers": [{**TAXPAYER, "cash_register_code_ranges": 5}]}, "must be a list"),
    ({"taxpayers": [{**TAXPAYER, "cash_register_code_ranges": ["①②③④⑤"]}]}, "5 letters"),
    ({"taxpayers": [{**TAXPAYER, "stopped_from": "２０２２-01-01"}]}, "YYYY-MM-DD"),
    ({"taxpayers": [{**TAXPAYER, "name": "a\x00b"}]}, "control character"),
    ({"taxpayers": [{**TAXPAYER, "name": "\ud800"}]}, "lone surrogate"),
    ({"taxpayers": [{**TAXPAYER, "einvoice_stopped": [True]}]}, "true or false"),
    ({"taxpayers": [], "extra": 1}, "unknown field"),
])
def test_wrong_shapes_name_record_and_field(data: object, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_registry_json(data)


def test_csv_with_nul_or_extra_cells_is_refused() -> None:
    with pytest.raises(RegistryError, match=r"cannot be read|control character"):
        parse_registry(b"tax_id,name,status\n0100109106,\x00,00\n", "text/csv")
    with pytest.raises(RegistryError, match="more cells"):
        parse_registry(b"tax_id,name,status\n0100109106,A,00,extra\n", "text/csv")
    with pytest.raises(RegistryError, match="not valid JSON"):
        parse_registry(b'{"taxpayers": [' + b"1" * 5000 + b"]}", "application/json")


# --- status history -----------------------------------------------------------------------

def _taxpayer(status: str, since: str | None = None) -> Taxpayer:
    return parse_registry_json({"taxpayers": [{**TAXPAYER, "status": status,
                                               "status_since": since}]}).taxpayers[0]


def _history(taxpayer: Taxpayer) -> list[tuple[str, str | None]]:
    return [(c.status, c.since.isoformat() if c.since else None) for c in taxpayer.statuses]


def _imported(*imports: tuple[str, str | None]) -> Taxpayer:
    stored: Taxpayer | None = None
    for status, since in imports:
        stored = record_status(stored, _taxpayer(status, since))
    assert stored is not None
    return stored


@pytest.mark.parametrize(("imports", "history"), [
    # a dated change after an undated status: the old one until the day before
    ([("00", None), ("01", "2025-06-01")], [("00", None), ("01", "2025-06-01")]),
    # the same file again changes nothing
    ([("00", None), ("01", "2025-06-01"), ("01", "2025-06-01")],
     [("00", None), ("01", "2025-06-01")]),
    # the same status with a later date goes on from its earlier start
    ([("00", None), ("01", "2025-06-01"), ("01", "2025-07-01")],
     [("00", None), ("01", "2025-06-01")]),
    # an earlier date supersedes what was recorded from that day on
    ([("00", None), ("01", "2025-06-01"), ("05", "2025-04-01")],
     [("00", None), ("05", "2025-04-01")]),
    ([("00", None), ("05", "2025-04-01"), ("01", "2025-06-01")],
     [("00", None), ("05", "2025-04-01"), ("01", "2025-06-01")]),
    # a status without a date holds on every date; the same one keeps its recorded start
    ([("00", None), ("01", "2025-06-01"), ("05", None)], [("05", None)]),
    ([("00", None), ("01", "2025-06-01"), ("01", None)], [("00", None), ("01", "2025-06-01")]),
    # the first word is a dated status: nothing is known before it
    ([("01", "2025-06-01")], [("01", "2025-06-01")]),
    ([("01", "2025-06-01"), ("00", "2020-01-01")], [("00", "2020-01-01")]),
])
def test_an_import_records_its_status_from_its_date_on(
        imports: list[tuple[str, str | None]], history: list[tuple[str, str | None]]) -> None:
    assert _history(_imported(*imports)) == history


def test_the_status_on_a_day_is_the_last_one_begun() -> None:
    taxpayer = _imported(("00", None), ("05", "2025-04-01"), ("01", "2025-06-01"))
    assert [taxpayer.status_on(date.fromisoformat(day)) for day in (
        "2020-01-01", "2025-03-31", "2025-04-01", "2025-05-31", "2025-06-01", "2030-01-01")] == [
        "00", "00", "05", "05", "01", "01"]
    assert _imported(("01", "2025-06-01")).status_on(date(2025, 3, 10)) is None


def test_the_history_is_stored_and_read_back_and_never_taken_from_a_file() -> None:
    taxpayer = _imported(("00", None), ("05", "2025-04-01"), ("01", "2025-06-01"))
    stored = taxpayer_to_dict(taxpayer)
    assert stored["status_history"] == [{"status": "00", "since": None},
                                        {"status": "05", "since": "2025-04-01"}]
    assert taxpayer_from_dict(stored) == taxpayer
    with pytest.raises(RegistryError, match=r"taxpayers\[0\]: status_history is kept by the "
                                            "registry"):
        parse_registry_json({"taxpayers": [stored]})
    with pytest.raises(RegistryError, match=r"status_history\[1\]: status '08'"):
        taxpayer_from_dict({**stored, "status_history": [{"status": "00"},
                                                         {"status": "08", "since": None}]})
