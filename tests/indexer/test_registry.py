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

