"""`Intake` against a real SQLite store: acceptance notices, chain rules and what gets stored.

Every state change is read back from the store; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from indexer.intake import Intake
from indexer.keys import CnKey, VnKey
from indexer.model import Invoice, Kind, Lifecycle, Relation, RelationKind
from indexer.package import PackageError, package_from_json
from indexer.rules import RuleConfig, Severity
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from tests.factories import (
    CN_CODE_E,
    PROVIDER,
    SELLER,
    SELLER_2,
    authority_code,
    cancel,
    cn_digital,
    cn_invoice,
    package,
    vn_invoice,
    vn_key,
)

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def key(number: int, seller: str = SELLER) -> VnKey:
    return VnKey(seller, "1", "C22TAA", number)


def doc(number: int, seller: str = SELLER) -> str:
    return key(number, seller).doc_id


def replacement(number: int, original: int, **over: Any) -> dict[str, Any]:
    return vn_invoice(number, kind="replacement", original=vn_key(original), **over)


def adjustment(number: int, original: int, **over: Any) -> dict[str, Any]:
    return vn_invoice(number, kind="adjustment", original=vn_key(original), **over)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with open_sqlite_store(tmp_path / "x.sqlite3") as sqlite_store:
        yield sqlite_store


@pytest.fixture
def intake(store: SqliteStore) -> Intake:
    return Intake(store, RuleConfig(), clock=lambda: NOW)


async def ingest(
    intake: Intake,
    invoices: list[dict[str, Any]] | None = None,
    notices: list[dict[str, Any]] | None = None,
    package_id: str | None = None,
) -> dict[str, Any]:
    result = await intake.ingest(
        package_from_json(package(invoices, notices, package_id=package_id))
    )
    assert not result.replayed
    return result.notice


def rules(item: dict[str, Any]) -> list[str]:
    return [e["rule"] for e in item["errors"]]


def only_error(item: dict[str, Any]) -> dict[str, Any]:
    assert item["result"] == "rejected"
    assert item["warnings"] == []
    assert len(item["errors"]) == 1
    error: dict[str, Any] = item["errors"][0]
    assert error["severity"] == "error"
    return error


async def stored(store: SqliteStore, doc_id: str) -> Invoice:
    invoice = await store.get_invoice(doc_id)
    assert invoice is not None, doc_id
    return invoice


# --- notices and plain acceptance -----------------------------------------------------------------


async def test_all_accepted_package_and_its_notice(intake: Intake, store: SqliteStore) -> None:
    invoices = [vn_invoice(1), vn_invoice(2), cn_invoice(), cn_digital()]
    notice = await ingest(intake, invoices, package_id="PKG-ALL")
    assert {k: v for k, v in notice.items() if k != "items"} == {
        "package_id": "PKG-ALL",
        "sender": PROVIDER,
        "received_at": "2026-11-23T00:00:00Z",
        "declared_count": 4,
        "result": "accepted",
        "accepted": 4,
        "rejected": 0,
    }
    assert notice["items"][0] == {
        "index": 0,
        "item": "invoice",
        "id": doc(1),
        "key": {"seller_tax_id": SELLER, "template": "1", "series": "C22TAA", "number": 1},
        "notice_id": None,
        "result": "accepted",
        "errors": [],
        "warnings": [],
    }
    assert notice["items"][2]["id"] == f"cn:{CN_CODE_E}:81532753"
    assert notice["items"][2]["key"] == {"invoice_code": CN_CODE_E, "invoice_number": "81532753"}
    assert notice["items"][3]["id"] == "cn:23442000000014209621"
    assert notice["items"][3]["key"] == {
        "invoice_code": None,
        "invoice_number": "23442000000014209621",
    }
    assert [i["index"] for i in notice["items"]] == [0, 1, 2, 3]
    assert all(i["result"] == "accepted" for i in notice["items"])

    assert await store.count_invoices() == 4
    first = await stored(store, doc(1))
    assert first.package_id == "PKG-ALL"
    assert first.lifecycle is Lifecycle.ISSUED
    assert first.relations == ()
    assert first.authority_code == authority_code(1)
    digital = await stored(store, "cn:23442000000014209621")
    assert digital.key == CnKey(None, "23442000000014209621")
    assert digital.type_code == "32"
    record = await store.get_package("PKG-ALL")
    assert record is not None
    assert record.notice == notice
    assert record.received_at == NOW
    assert record.sender == PROVIDER


async def test_mixed_package_stores_only_the_good_invoice(
    intake: Intake, store: SqliteStore
) -> None:
    bad = vn_invoice(2, seller_tax_id="0100233480")
    notice = await ingest(intake, [vn_invoice(1), bad])
    assert (notice["result"], notice["accepted"], notice["rejected"]) == (
        "partially_accepted",
        1,
        1,
    )
    good_item, bad_item = notice["items"]
    assert good_item["result"] == "accepted"
    assert bad_item["index"] == 1
    assert bad_item["item"] == "invoice"
    error = only_error(bad_item)
    assert (error["rule"], error["field"]) == ("vn.tax_id.invalid", "seller_tax_id")
    assert error["message"]
    assert error["message_vi"]
    assert await store.count_invoices() == 1
    assert await store.get_invoice(doc(1)) is not None
    assert await store.get_invoice(doc(2, "0100233480")) is None
    assert await store.find_by_authority_code(authority_code(2)) is None


async def test_wholly_rejected_package_is_recorded_and_stores_nothing(
    intake: Intake, store: SqliteStore
) -> None:
    data = package([vn_invoice(1, series="C22ZAA"), cn_invoice(type_code="99")])
    result = await intake.ingest(package_from_json(data))
    assert (result.notice["result"], result.notice["accepted"], result.notice["rejected"]) == (
        "rejected",
        0,
        2,
    )
    assert [rules(i) for i in result.notice["items"]] == [
        ["vn.series.invalid"],
        ["cn.type_code.unknown"],
    ]
    assert await store.count_invoices() == 0
    again = await intake.ingest(package_from_json(data))
    assert again.replayed
    assert again.notice == result.notice


async def test_warnings_only_invoice_is_accepted_with_its_warnings(
    intake: Intake, store: SqliteStore
) -> None:
    notice = await ingest(intake, [vn_invoice(1, total_amount="1100002")])
    assert notice["result"] == "accepted"
    (item,) = notice["items"]
    assert item["result"] == "accepted"
    assert item["errors"] == []
    assert [(w["rule"], w["field"], w["severity"]) for w in item["warnings"]] == [
        ("invoice.totals.inconsistent", "total_amount", "warning")
    ]
    assert item["warnings"][0]["detail"] == "1000000 + 100000 != 1100002"
    invoice = await stored(store, doc(1))
    assert str(invoice.amounts.total) == "1100002"


# --- replays and id reuse ---------------------------------------------------------------------


async def test_reposting_a_package_replays_its_notice(intake: Intake, store: SqliteStore) -> None:
    data = package([vn_invoice(1), vn_invoice(2, series="C22ZAA")], [cancel(1)])
    first = await intake.ingest(package_from_json(data))
    assert not first.replayed
    assert await store.count_invoices() == 1
    before = await stored(store, doc(1))

    again = await intake.ingest(package_from_json(data))
    assert again.replayed
    assert again.notice == first.notice
    reordered = {k: data[k] for k in reversed(list(data))}
    assert (await intake.ingest(package_from_json(reordered))).notice == first.notice
    assert await store.count_invoices() == 1
    assert await stored(store, doc(1)) == before


async def test_package_id_reused_for_other_content_is_a_conflict(
    intake: Intake, store: SqliteStore
) -> None:
    await ingest(intake, [vn_invoice(1)], package_id="PKG-SAME")
    with pytest.raises(PackageError) as caught:
        await intake.ingest(package_from_json(package([vn_invoice(2)], package_id="PKG-SAME")))
    assert (caught.value.code, caught.value.status) == ("package.id_conflict", 409)
    assert caught.value.details["package_id"] == "PKG-SAME"
    assert await store.count_invoices() == 1
    assert await store.get_invoice(doc(2)) is None


# --- duplicates -------------------------------------------------------------------------------


async def test_duplicate_key_within_a_package(intake: Intake, store: SqliteStore) -> None:
    notice = await ingest(
        intake,
        [vn_invoice(1), vn_invoice(1, authority_code=authority_code(9))],
        package_id="PKG-DUP",
    )
    assert notice["items"][0]["result"] == "accepted"
    error = only_error(notice["items"][1])
    assert (error["rule"], error["field"], error["detail"]) == ("chain.duplicate_key", None, doc(1))
    assert await store.count_invoices() == 1
    assert (await stored(store, doc(1))).authority_code == authority_code(1)
    assert await store.find_by_authority_code(authority_code(9)) is None


@pytest.mark.parametrize(
    "again",
    [
        vn_invoice(1, authority_code=authority_code(9)),
        vn_invoice(1, series="1C22TAA", authority_code=authority_code(9)),
        {**vn_invoice(1, authority_code=authority_code(9)), "number": "00000001"},
    ],
    ids=["same", "template-prefixed series", "zero-padded number"],
)
async def test_duplicate_key_across_packages(
    intake: Intake, store: SqliteStore, again: dict[str, Any]
) -> None:
    await ingest(intake, [vn_invoice(1)], package_id="PKG-FIRST")
    notice = await ingest(intake, [again])
    assert rules(notice["items"][0]) == ["chain.duplicate_key"]
    assert notice["result"] == "rejected"
    assert await store.count_invoices() == 1
    assert (await stored(store, doc(1))).package_id == "PKG-FIRST"


async def test_duplicate_cn_key_across_packages(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [cn_invoice(), cn_digital()])
    notice = await ingest(intake, [cn_invoice(total_amount="217.62"), cn_digital()])
    assert [rules(i) for i in notice["items"]] == [["chain.duplicate_key"]] * 2
    assert await store.count_invoices() == 2


async def test_duplicate_authority_code(intake: Intake, store: SqliteStore) -> None:
    notice = await ingest(intake, [vn_invoice(1), vn_invoice(2, authority_code=authority_code(1))])
    error = only_error(notice["items"][1])
    assert (error["rule"], error["field"], error["detail"]) == (
        "chain.duplicate_authority_code",
        "authority_code",
        authority_code(1),
    )
    notice = await ingest(intake, [vn_invoice(3, authority_code=authority_code(1).lower())])
    assert rules(notice["items"][0]) == ["chain.duplicate_authority_code"]
    assert await store.count_invoices() == 1
    assert await store.get_invoice(doc(2)) is None
    assert await store.get_invoice(doc(3)) is None
    found = await store.find_by_authority_code(authority_code(1))
    assert found is not None
    assert found.key == key(1)


# --- replacement and adjustment ---------------------------------------------------------------


async def test_replacement_of_unknown_original(intake: Intake, store: SqliteStore) -> None:
    notice = await ingest(intake, [replacement(2, 1)])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"], error["detail"]) == (
        "chain.original.not_found",
        "original",
        doc(1),
    )
    assert await store.count_invoices() == 0


async def test_original_must_come_earlier_in_the_package(
    intake: Intake, store: SqliteStore
) -> None:
    notice = await ingest(intake, [replacement(2, 1), vn_invoice(1)])
    assert rules(notice["items"][0]) == ["chain.original.not_found"]
    assert notice["items"][1]["result"] == "accepted"
    original = await stored(store, doc(1))
    assert original.lifecycle is Lifecycle.ISSUED
    assert original.relations == ()
    assert await store.get_invoice(doc(2)) is None


async def test_replacement_with_original_earlier_in_the_same_package(
    intake: Intake, store: SqliteStore
) -> None:
    notice = await ingest(intake, [vn_invoice(1), replacement(2, 1)])
    assert notice["result"] == "accepted"
    original = await stored(store, doc(1))
    assert original.lifecycle is Lifecycle.REPLACED
    assert original.relations == (Relation(RelationKind.REPLACED_BY, key=key(2), at=NOW),)
    new = await stored(store, doc(2))
    assert new.kind is Kind.REPLACEMENT
    assert new.original == key(1)
    assert new.lifecycle is Lifecycle.ISSUED
    assert new.relations == (Relation(RelationKind.REPLACES, key=key(1), at=NOW),)


async def test_replacement_of_a_stored_original(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1)], package_id="PKG-ORIGINAL")
    notice = await ingest(intake, [replacement(2, 1)], package_id="PKG-REPLACEMENT")
    assert notice["items"][0]["result"] == "accepted"
    original = await stored(store, doc(1))
    assert original.lifecycle is Lifecycle.REPLACED
    assert original.relations == (Relation(RelationKind.REPLACED_BY, key=key(2), at=NOW),)
    assert original.package_id == "PKG-ORIGINAL"
    new = await stored(store, doc(2))
    assert new.relations == (Relation(RelationKind.REPLACES, key=key(1), at=NOW),)
    assert new.package_id == "PKG-REPLACEMENT"
    assert await store.count_invoices() == 2


async def test_replacing_an_already_replaced_invoice(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1), replacement(2, 1)])
    notice = await ingest(intake, [replacement(3, 1)])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"], error["detail"]) == (
        "chain.original.not_in_force",
        "original",
        doc(1),
    )
    assert await store.get_invoice(doc(3)) is None
    original = await stored(store, doc(1))
    assert original.relations == (Relation(RelationKind.REPLACED_BY, key=key(2), at=NOW),)


async def test_replacing_a_replacement_invoice_is_allowed(
    intake: Intake, store: SqliteStore
) -> None:
    await ingest(intake, [vn_invoice(1), replacement(2, 1)])
    notice = await ingest(intake, [replacement(3, 2)])
    assert notice["result"] == "accepted"
    assert (await stored(store, doc(2))).lifecycle is Lifecycle.REPLACED
    assert (await stored(store, doc(1))).lifecycle is Lifecycle.REPLACED


async def test_a_replacement_invoice_cannot_be_adjusted(intake: Intake, store: SqliteStore) -> None:
    """vn-einvoice §8 step 2.4: corrections go on "only in the form first used": a
    replacement that is wrong again is replaced, not adjusted (issue 17 item 11: deleting
    this branch of the chain rules left the suite passing)."""
    await ingest(intake, [vn_invoice(1), replacement(2, 1)])
    notice = await ingest(intake, [adjustment(3, 2)])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"]) == ("chain.original.is_replacement", "original")
    assert await store.get_invoice(doc(3)) is None
    replacing = await stored(store, doc(2))
    assert replacing.lifecycle is Lifecycle.ISSUED
    assert replacing.relations == (Relation(RelationKind.REPLACES, key=key(1), at=NOW),)


@pytest.mark.parametrize("second", [replacement, adjustment])
async def test_an_adjustment_invoice_cannot_be_replaced_or_adjusted(
    intake: Intake, store: SqliteStore, second: Any
) -> None:
    await ingest(intake, [vn_invoice(1), adjustment(2, 1)])
    notice = await ingest(intake, [second(3, 2)])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"]) == ("chain.original.is_adjustment", "original")
    assert await store.get_invoice(doc(3)) is None
    adjusting = await stored(store, doc(2))
    assert adjusting.lifecycle is Lifecycle.ISSUED
    assert adjusting.relations == (Relation(RelationKind.ADJUSTS, key=key(1), at=NOW),)


async def test_replacing_an_adjusted_invoice(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1), adjustment(2, 1)])
    notice = await ingest(intake, [replacement(3, 1)])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"]) == ("chain.original.adjusted", "original")
    assert await store.get_invoice(doc(3)) is None
    original = await stored(store, doc(1))
    assert original.lifecycle is Lifecycle.ADJUSTED
    assert original.relations == (Relation(RelationKind.ADJUSTED_BY, key=key(2), at=NOW),)


async def test_adjusting_an_adjusted_invoice_again(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1), adjustment(2, 1)])
    notice = await ingest(intake, [adjustment(3, 1, total_amount="1100000")])
    assert notice["result"] == "accepted"
    original = await stored(store, doc(1))
    assert original.lifecycle is Lifecycle.ADJUSTED
    assert original.relations == (
        Relation(RelationKind.ADJUSTED_BY, key=key(2), at=NOW),
        Relation(RelationKind.ADJUSTED_BY, key=key(3), at=NOW),
    )
    third = await stored(store, doc(3))
    assert third.kind is Kind.ADJUSTMENT
    assert third.relations == (Relation(RelationKind.ADJUSTS, key=key(1), at=NOW),)


async def test_original_from_another_seller(intake: Intake, store: SqliteStore) -> None:
    other = vn_invoice(1, seller_tax_id=SELLER_2, authority_code=authority_code(101))
    await ingest(intake, [other])
    notice = await ingest(
        intake, [vn_invoice(2, kind="replacement", original=vn_key(1, seller_tax_id=SELLER_2))]
    )
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"], error["detail"]) == (
        "chain.original.scheme",
        "original",
        doc(1, SELLER_2),
    )
    assert await store.get_invoice(doc(2)) is None
    untouched = await stored(store, doc(1, SELLER_2))
    assert untouched.lifecycle is Lifecycle.ISSUED
    assert untouched.relations == ()


# --- cancellation -----------------------------------------------------------------------------


async def test_cancel_of_unknown_invoice(intake: Intake, store: SqliteStore) -> None:
    notice = await ingest(intake, notices=[cancel(1)])
    item = notice["items"][0]
    assert (item["index"], item["item"], item["notice_id"]) == (0, "notice", "04SS-2022-0001")
    error = only_error(item)
    assert (error["rule"], error["field"], error["detail"]) == (
        "notice.target.not_found",
        "key",
        doc(1),
    )
    assert notice["result"] == "rejected"
    assert await store.count_invoices() == 0


async def test_cancel_marks_the_invoice_cancelled(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1)])
    notice = await ingest(
        intake, notices=[cancel(1, notice_id="04SS-2022-0042", reason="sai người mua")]
    )
    assert notice["items"][0] == {
        "index": 0,
        "item": "notice",
        "id": doc(1),
        "key": key(1).as_dict(),
        "notice_id": "04SS-2022-0042",
        "result": "accepted",
        "errors": [],
        "warnings": [],
    }
    cancelled = await stored(store, doc(1))
    assert cancelled.lifecycle is Lifecycle.CANCELLED
    assert cancelled.relations == (
        Relation(
            RelationKind.CANCELLED_BY, notice_id="04SS-2022-0042", reason="sai người mua", at=NOW
        ),
    )
    assert await store.count_invoices() == 1


async def test_cancel_of_an_invoice_in_the_same_package(intake: Intake, store: SqliteStore) -> None:
    notice = await ingest(intake, [vn_invoice(1)], [cancel(1)])
    assert [i["index"] for i in notice["items"]] == [0, 1]
    assert notice["result"] == "accepted"
    assert (await stored(store, doc(1))).lifecycle is Lifecycle.CANCELLED


async def test_cancelling_twice(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1)], [cancel(1, notice_id="N-1")])
    notice = await ingest(intake, notices=[cancel(1, notice_id="N-2", reason="again")])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"]) == ("notice.target.not_in_force", "key")
    invoice = await stored(store, doc(1))
    assert invoice.relations == (
        Relation(RelationKind.CANCELLED_BY, notice_id="N-1", reason="wrong buyer", at=NOW),
    )
    notice = await ingest(
        intake, [vn_invoice(2)], [cancel(2, notice_id="N-3"), cancel(2, notice_id="N-4")]
    )
    assert [i["result"] for i in notice["items"]] == ["accepted", "accepted", "rejected"]
    assert rules(notice["items"][2]) == ["notice.target.not_in_force"]
    assert [r.notice_id for r in (await stored(store, doc(2))).relations] == ["N-3"]


async def test_cancelling_a_replaced_invoice(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1), replacement(2, 1)])
    notice = await ingest(intake, notices=[cancel(1)])
    assert rules(notice["items"][0]) == ["notice.target.not_in_force"]
    assert (await stored(store, doc(1))).lifecycle is Lifecycle.REPLACED


async def test_replacing_a_cancelled_invoice(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1)], [cancel(1)])
    notice = await ingest(intake, [replacement(2, 1)])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"]) == ("chain.original.not_in_force", "original")
    assert await store.get_invoice(doc(2)) is None
    original = await stored(store, doc(1))
    assert original.lifecycle is Lifecycle.CANCELLED
    assert [r.kind for r in original.relations] == [RelationKind.CANCELLED_BY]


async def test_invalid_notice_changes_nothing(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [vn_invoice(1)])
    notice = await ingest(intake, notices=[cancel(1, reason=None)])
    assert notice["items"][0]["id"] is None
    assert rules(notice["items"][0]) == ["notice.reason.required"]
    invoice = await stored(store, doc(1))
    assert invoice.lifecycle is Lifecycle.ISSUED
    assert invoice.relations == ()


# --- rejected items leave no trace --------------------------------------------------------------


async def test_rejected_items_leave_nothing_in_the_store(
    intake: Intake, store: SqliteStore
) -> None:
    await ingest(intake, [vn_invoice(1)], [cancel(1)])
    before = await stored(store, doc(1))
    notice = await ingest(
        intake,
        [
            vn_invoice(5, currency="US$"),  # field error
            replacement(6, 1),  # chain error: original cancelled
            vn_invoice(7, authority_code=authority_code(1)),  # chain error: code taken
            vn_invoice(8),  # accepted
        ],
        [cancel(8, notice_id="N-8", reason=None)],
    )  # invalid notice for the accepted invoice
    assert [i["result"] for i in notice["items"]] == [
        "rejected",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert (notice["accepted"], notice["rejected"]) == (1, 4)
    assert await store.count_invoices() == 2
    for number in (5, 6, 7):
        assert await store.get_invoice(doc(number)) is None
    assert await stored(store, doc(1)) == before
    eight = await stored(store, doc(8))
    assert eight.lifecycle is Lifecycle.ISSUED
    assert eight.relations == ()
    assert eight.authority_code == authority_code(8)


# --- found by review and fixed: these pin the fixes -------------------------------------------


async def test_cn_original_from_another_seller(intake: Intake, store: SqliteStore) -> None:
    await ingest(intake, [cn_invoice()])
    other_seller = cn_invoice(
        "81532754",
        kind="replacement",
        seller_tax_id="91440300MA5FXXXX1X",
        original={"invoice_code": CN_CODE_E, "invoice_number": "81532753"},
    )
    notice = await ingest(intake, [other_seller])
    error = only_error(notice["items"][0])
    assert (error["rule"], error["field"]) == ("chain.original.scheme", "original")
    assert await store.get_invoice(f"cn:{CN_CODE_E}:81532754") is None
    assert (await stored(store, f"cn:{CN_CODE_E}:81532753")).lifecycle is Lifecycle.ISSUED


@pytest.mark.parametrize(
    "rule",
    [
        "chain.original.not_found",
        "chain.original.adjusted",
        "chain.duplicate_key",
        "vn.series.invalid",
    ],
)
def test_rules_of_identity_and_chain_cannot_be_downgraded(rule: str) -> None:
    """Downgrading one would acknowledge an invoice that is then not stored (or stored
    under a malformed key), so the configuration is refused."""
    with pytest.raises(ValueError, match="cannot be reconfigured"):
        RuleConfig(severity={rule: Severity.WARNING})
