"""The demo data (`verify.demo`) holds what each feature needs to show something: numbers
missing from most series of both schemes, cancellations and chains in both schemes, and the
ledger buyer's month; the same every time. What the service answers on it is checked by
tests/test_doc_examples_run.py (the docs' examples) and tests/verify/test_cli.py."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from verify.demo import (
    LEDGER_BUYER,
    UNBROKEN_SERIES,
    DemoPlan,
    build_demo,
    example_queries,
)


@pytest.fixture(scope="module")
def plan() -> DemoPlan:
    return build_demo()


def _invoices(plan: DemoPlan) -> list[dict[str, Any]]:
    return [inv for p in plan.packages for inv in p.get("invoices", [])]


def _notices(plan: DemoPlan) -> list[dict[str, Any]]:
    return [n for p in plan.packages for n in p.get("notices", [])]


def _id(inv: dict[str, Any]) -> tuple[str, ...]:
    return (inv["seller_tax_id"], inv["series"], str(inv["number"]))


def _digest(plan: DemoPlan) -> str:
    return hashlib.sha256(json.dumps(plan.packages, sort_keys=True).encode()).hexdigest()


def test_the_demo_is_the_same_every_time(plan: DemoPlan) -> None:
    assert _digest(build_demo()) == _digest(plan)
    assert _digest(build_demo(seed=7)) != _digest(plan)


def _series_id(inv: dict[str, Any]) -> str:
    if inv["scheme"] == "vn":
        return f"vn:{inv['seller_tax_id']}:{inv['template']}:{inv['series']}"
    return f"cn:{inv.get('invoice_code')}"


def test_every_numbered_series_but_one_misses_numbers(plan: DemoPlan) -> None:
    """Vietnamese series and Chinese codes (not the 数电 numbers, which get no report) have
    holes, and the left-out numbers are in no package."""
    held = {(_series_id(i), int(i.get("number") or i["invoice_number"])) for i in _invoices(plan)}
    numbered = {series for series, _ in held} - {"cn:None"}
    unbroken = {s for s in numbered if s.rsplit(":", 1)[1] in UNBROKEN_SERIES}
    assert unbroken
    assert set(plan.missing) == numbered - unbroken
    for series, numbers in plan.missing.items():
        assert numbers
        assert not {(series, n) for n in numbers} & held


def test_cancellations_and_chains_in_both_schemes(plan: DemoPlan) -> None:
    notices = _notices(plan)
    assert any("invoice_code" in n["key"] for n in notices)  # 作废 of a paper invoice
    assert sum("series" in n["key"] for n in notices) == 5 * 10 + 1  # 10 a series, + ledger
    kinds = Counter((i["scheme"], i["kind"]) for i in _invoices(plan))
    assert kinds[("cn", "adjustment")] == 3  # red-letter invoices of 数电 invoices
    assert kinds[("vn", "replacement")] == 5 * 10 + 2
    first, second, third = plan.ledger.chain
    assert second["original"] == {k: first[k] for k in second["original"]}
    assert third["original"] == {k: second[k] for k in third["original"]}


def test_the_ledger_buyer_has_a_line_of_each_status_and_invoices_it_lacks(
    plan: DemoPlan,
) -> None:
    statuses = [status for status, _ in plan.ledger.booked]
    assert set(statuses) == {
        "valid",
        "mismatch",
        "cancelled",
        "replaced",
        "adjusted",
        "not_found",
        "invalid_key",
        "duplicate_line",
    }
    to_buyer = [i for i in _invoices(plan) if i.get("buyer_tax_id") == LEDGER_BUYER[0]]
    booked = {_id(inv) for _, inv in plan.ledger.booked}
    unbooked = sorted((i for i in to_buyer if _id(i) not in booked), key=lambda i: i["issued_at"])
    assert unbooked == plan.ledger.not_in_ledger
    assert all(i["issued_at"].startswith("2025-11") for i in to_buyer)
    lost = dict(plan.ledger.booked)["not_found"]
    assert lost not in to_buyer
    assert lost["number"] in plan.missing[f"vn:{lost['seller_tax_id']}:1:{lost['series']}"]


@pytest.mark.parametrize("per_series", [100, 200])
def test_smaller_demos_still_have_every_example(per_series: int) -> None:
    small = build_demo(per_series=per_series)
    titles = [title for title, _ in example_queries(small)]
    assert len(titles) == len(set(titles)) == 10
    assert len(small.ledger.booked) == 9
