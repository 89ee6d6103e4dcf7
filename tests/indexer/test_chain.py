"""The chain table (indexer/chain.py), every cell through `Intake` on a real SQLite store, and
the monthly recheck finding what the table refuses in what the index already holds (issue 17
item 8). vn-einvoice §5.6: "Once accepted both invoices record the link"; §8 step 2.3-2.5."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from indexer import chain
from indexer.chain import TABLE, Event
from indexer.intake import Intake
from indexer.model import Invoice, Kind, Lifecycle, Relation, RelationKind
from indexer.package import package_from_json
from indexer.recheck import Finding, recheck_month
from indexer.rules import RULES, RuleConfig, rules_markdown
from indexer.store.protocol import StoredPackage
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from indexer.validate import validate_invoice
from tests.factories import CN_CODE_SPECIAL, cancel, cn_invoice, package, vn_invoice, vn_key

NOW = datetime(2026, 11, 23, tzinfo=UTC)
CFG = RuleConfig()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with open_sqlite_store(tmp_path / "x.sqlite3") as sqlite_store:
        yield sqlite_store


def invoice(raw: dict[str, Any], **over: Any) -> Invoice:
    parsed, problems = validate_invoice(raw, CFG, package_id="PKG-SEED", now=NOW)
    assert parsed is not None, problems
    return dataclasses.replace(parsed, **over)


async def seed(store: SqliteStore, *invoices: Invoice) -> None:
    record = StoredPackage(f"PKG-SEED-{invoices[0].doc_id}", "s", "0" * 64, NOW, {})
    await store.commit_package(record, list(invoices), [])


async def ingest(store: SqliteStore, **body: Any) -> dict[str, Any]:
    result = await Intake(store, CFG, clock=lambda: NOW).ingest(package_from_json(package(**body)))
    return result.notice


#: A paper 专票 (total 217.62): the blue invoice of the red-letter cells.
BLUE_KEY = {"invoice_code": CN_CODE_SPECIAL, "invoice_number": "00000001"}
BLUE = cn_invoice("00000001", invoice_code=CN_CODE_SPECIAL, type_code="01", check_code=None)


def red_letter(number: str, total: str, of: dict[str, Any] = BLUE_KEY) -> dict[str, Any]:
    """A red-letter invoice (红字发票) of `of` for `total`, issued the blue invoice's day."""
    return cn_invoice(
        number,
        invoice_code=CN_CODE_SPECIAL,
        type_code="01",
        check_code=None,
        kind="red_letter",
        original=of,
        red_form_number="4403122303230001",
        amount_before_tax=total,
        tax_amount="0.00",
        total_amount=total,
    )


def named(event: Event) -> dict[str, Any]:
    """The invoice the cell's document names: a Chinese blue invoice for a red letter."""
    return BLUE if event in chain.REVERSALS else vn_invoice(1)


def incoming(event: Event) -> dict[str, Any]:
    if event is Event.CANCEL:
        return {"notices": [cancel(1)]}
    if event in chain.REVERSALS:
        total = "-217.62" if event is Event.REVERSE_FULLY else "-100.00"
        return {"invoices": [red_letter("00000002", total)]}
    kind = "replacement" if event is Event.REPLACE else "adjustment"
    return {"invoices": [vn_invoice(2, kind=kind, original=vn_key(1))]}


CELLS = sorted(TABLE, key=lambda cell: tuple(part.value for part in cell))


@pytest.mark.parametrize(
    ("kind", "state", "event"), CELLS, ids=["-".join(p.value for p in c) for c in CELLS]
)
async def test_every_cell_of_the_table_through_intake(
    store: SqliteStore, kind: Kind, state: Lifecycle, event: Event
) -> None:
    """Invoice #1 of `kind` stands at `state`; a document does `event` to it."""
    await seed(store, invoice(named(event), kind=kind, lifecycle=state))
    notice = await ingest(store, **incoming(event))
    [item] = notice["items"]
    step = TABLE[(kind, state, event)]
    stored = await store.get_invoice(invoice(named(event)).doc_id)
    assert stored is not None
    if step.allowed:
        assert (item["result"], item["errors"]) == ("accepted", [])
        assert stored.lifecycle is step.result
    else:
        assert item["result"] == "rejected"
        assert [e["rule"] for e in item["errors"]] == [step.rule]
        assert stored.lifecycle is state  # nothing changed
        assert stored.relations == ()


def test_the_table_is_complete_and_names_registered_rules() -> None:
    assert len(TABLE) == len(Kind) * len(Lifecycle) * len(Event)
    for step in TABLE.values():
        assert (step.rule is None) != (step.result is None)
        assert step.rule is None or step.rule in RULES
    for rule in chain.BEFORE_ORIGINAL.values():
        assert rule in RULES


def test_rules_md_shows_the_table() -> None:
    text = rules_markdown()
    assert "## Chain transitions" in text
    assert (
        "| original | adjusted | `chain.original.adjusted` | -> adjusted | "
        "`chain.cancel.has_adjustment` |" in text
    )


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("replacement", "chain.replacement.before_original"),
        ("adjustment", "chain.adjustment.before_original"),
    ],
)
async def test_a_correction_dated_before_its_original_is_refused(
    store: SqliteStore, kind: str, rule: str
) -> None:
    await ingest(store, invoices=[vn_invoice(1, issued_at="2022-05-15T09:30:00+07:00")])
    early = vn_invoice(2, kind=kind, original=vn_key(1), issued_at="2022-05-14T09:30:00+07:00")
    [item] = (await ingest(store, invoices=[early]))["items"]
    assert [e["rule"] for e in item["errors"]] == [rule]
    original = await store.get_invoice(invoice(vn_invoice(1)).doc_id)
    assert original is not None
    assert original.lifecycle is Lifecycle.ISSUED


async def test_the_dates_are_compared_in_vietnamese_time(store: SqliteStore) -> None:
    """vn-einvoice §1.4: the issue date is the day in Asia/Ho_Chi_Minh (UTC+7): 17:30Z on
    the 14th is the 15th, the original's day."""
    await ingest(store, invoices=[vn_invoice(1, issued_at="2022-05-15T09:30:00+07:00")])
    same_day = vn_invoice(
        2, kind="replacement", original=vn_key(1), issued_at="2022-05-14T17:30:00Z"
    )
    [item] = (await ingest(store, invoices=[same_day]))["items"]
    assert (item["result"], item["errors"]) == ("accepted", [])


# --- recheck: the same table over what an earlier release let in ----------------------------


async def findings(store: SqliteStore, month: str = "2022-05") -> list[tuple[str, str]]:
    out: list[Finding] = []
    async for _, page in recheck_month(store, None, month, CFG):
        out.extend(page)
    return sorted((f.doc_id, f.rule) for f in out)


def linked(original: Invoice, correction: Invoice) -> tuple[Invoice, Invoice]:
    replacing = correction.kind is Kind.REPLACEMENT
    forward = RelationKind.REPLACES if replacing else RelationKind.ADJUSTS
    back = RelationKind.REPLACED_BY if replacing else RelationKind.ADJUSTED_BY
    return (
        dataclasses.replace(
            original,
            lifecycle=Lifecycle.REPLACED if replacing else Lifecycle.ADJUSTED,
            relations=(Relation(back, key=correction.key, at=NOW),),
        ),
        dataclasses.replace(correction, relations=(Relation(forward, key=original.key, at=NOW),)),
    )


def cancelled(inv: Invoice) -> Invoice:
    rel = Relation(RelationKind.CANCELLED_BY, notice_id="04SS-1", reason="x", at=NOW)
    return dataclasses.replace(inv, lifecycle=Lifecycle.CANCELLED, relations=(*inv.relations, rel))


@pytest.mark.parametrize(
    ("kind", "cancel_which", "rule"),
    [
        ("adjustment", "original", "chain.cancel.has_adjustment"),
        ("adjustment", "correction", "chain.cancel.is_adjustment"),
        ("replacement", "correction", "chain.cancel.is_replacement"),
    ],
)
async def test_recheck_finds_a_cancelled_chain_an_earlier_release_accepted(
    store: SqliteStore, kind: str, cancel_which: str, rule: str
) -> None:
    original, correction = linked(
        invoice(vn_invoice(1)), invoice(vn_invoice(2, kind=kind, original=vn_key(1)))
    )
    if cancel_which == "original":
        original = cancelled(original)
    else:
        correction = cancelled(correction)
    await seed(store, original, correction)
    victim = original if cancel_which == "original" else correction
    assert (victim.doc_id, rule) in await findings(store)


async def test_recheck_finds_a_replacement_dated_before_its_original(store: SqliteStore) -> None:
    original, correction = linked(
        invoice(vn_invoice(1, issued_at="2022-05-20T09:00:00+07:00")),
        invoice(vn_invoice(2, kind="replacement", original=vn_key(1))),
    )
    await seed(store, original, correction)
    assert await findings(store) == [(correction.doc_id, "chain.replacement.before_original")]


async def test_recheck_finds_a_state_its_history_does_not_lead_to(store: SqliteStore) -> None:
    original, correction = linked(
        invoice(vn_invoice(1)), invoice(vn_invoice(2, kind="replacement", original=vn_key(1)))
    )
    await seed(store, dataclasses.replace(original, lifecycle=Lifecycle.ISSUED), correction)
    assert await findings(store) == [(original.doc_id, "chain.state.inconsistent")]


async def test_recheck_of_chains_intake_built_is_clean(store: SqliteStore) -> None:
    await ingest(store, invoices=[vn_invoice(1), vn_invoice(3)])
    await ingest(store, invoices=[vn_invoice(2, kind="replacement", original=vn_key(1))])
    await ingest(store, invoices=[vn_invoice(4, kind="adjustment", original=vn_key(3))])
    await ingest(store, invoices=[vn_invoice(5, kind="adjustment", original=vn_key(3))])
    await ingest(store, invoices=[vn_invoice(6, kind="replacement", original=vn_key(2))])
    assert await findings(store) == []


# --- red-letter invoices (cn-invoice §4.4: 红冲, 全额 = fully, 部分 = partly) ----------------


async def test_red_letters_add_up_through_intake_and_recheck_finds_them_clean(
    store: SqliteStore,
) -> None:
    await ingest(store, invoices=[BLUE])
    await ingest(store, invoices=[red_letter("00000002", "-100.00")])
    blue = await store.get_invoice(invoice(BLUE).doc_id)
    assert blue is not None
    assert (blue.lifecycle, chain.reversed_amount(blue)) == (
        Lifecycle.PARTIALLY_REVERSED,
        Decimal("100.00"),
    )
    [item] = (await ingest(store, invoices=[red_letter("00000003", "-117.63")]))["items"]
    assert [e["rule"] for e in item["errors"]] == ["chain.red_letter.exceeds_blue"]
    assert item["errors"][0]["detail"] == "117.62 of 217.62 left to reverse"
    await ingest(store, invoices=[red_letter("00000004", "-117.62")])
    blue = await store.get_invoice(invoice(BLUE).doc_id)
    assert blue is not None
    assert blue.lifecycle is Lifecycle.REVERSED
    assert await findings(store, "2023-03") == []


async def test_recheck_finds_red_letters_above_their_blue_total(store: SqliteStore) -> None:
    """What an earlier release, or another writer, let in: reds adding up to more."""
    reds = [invoice(red_letter(n, "-150.00")) for n in ("00000002", "00000003")]
    back = tuple(
        dataclasses.replace(r.relations[0], kind=RelationKind.REVERSED_BY, key=r.key) for r in reds
    )
    blue = invoice(BLUE, lifecycle=Lifecycle.REVERSED, relations=back)
    await seed(store, blue, *reds)
    assert await findings(store, "2023-03") == [(blue.doc_id, "chain.red_letter.exceeds_blue")]


async def test_recheck_finds_a_red_letter_the_blue_invoice_does_not_know(
    store: SqliteStore,
) -> None:
    red = invoice(red_letter("00000002", "-10.00"))
    await seed(store, invoice(BLUE), red)
    assert await findings(store, "2023-03") == [(red.doc_id, "recheck.relation.one_sided")]
