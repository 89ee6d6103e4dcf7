"""Red-letter invoices (红字发票, 红冲) through the real app, on each primary backend (issue 17,
item 10 and "Missing: red-letter invoices").

cn-invoice §4.4, the platform's statuses: "红冲 / 已冲红 | reversed by a red-letter invoice
(全额 = fully, 部分 = partly) | `H`, `3`; full/partial: `QH`/`BH` (Baidu), `8`/`7` (企享云)".
A red-letter invoice (kind `red_letter`) names its blue invoice (`original`) and carries the
number of its 红字信息表 (pre-数电) or 红字确认单 (数电) (`red_form_number`). The blue invoice
is `reversed` (已全额红冲) once its red-letter invoices add up to its total, and
`partially_reversed` (部分红冲) before; they never add up to more.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client
from tests.factories import CN_CODE_SPECIAL, cancel, cn_digital, cn_invoice, package, vn_invoice
from tests.verify.backend_apps import app_on_each_backend, settings_on_each_backend

__all__ = ["app_on_each_backend", "settings_on_each_backend"]  # the fixtures `cli`, `settings`

BLUE = "23442000000014209621"  # 数电, total 112.00, issued 2023-02-15
FORM = "44031223021500000001"  # its 红字确认单


def red(number: str, total: str, **over: Any) -> dict[str, Any]:
    """A red-letter invoice of `BLUE` for `total` (negative, as printed; tax-exempt)."""
    fields: dict[str, Any] = {
        "kind": "red_letter",
        "original": {"invoice_number": BLUE},
        "red_form_number": FORM,
        "issued_at": "2023-02-20T09:00:00+08:00",
        "amount_before_tax": total,
        "tax_amount": "0.00",
        "total_amount": total,
    }
    return {**cn_digital(f"234420000000142096{number}"), **fields, **over}


async def post(cli: Client, *invoices: dict[str, Any], notices: Any = None) -> list[list[str]]:
    resp = await cli.post("/api/v1/packages", json=package(list(invoices), notices))
    assert resp.status == 200, await resp.text()
    return [[e["rule"] for e in item["errors"]] for item in (await resp.json())["items"]]


async def lookup(cli: Client, number: str, total: str = "112.00") -> dict[str, Any]:
    params = {"number": number, "total_amount": total, "issued_on": "2023-02-15"}
    resp = await cli.get("/api/v1/invoices/lookup", params=params)
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def test_a_full_red_letter_reverses_its_blue_invoice(cli: Client) -> None:
    """已全额红冲: one red-letter invoice for the whole total. The blue answers `reversed`
    (not `adjusted`), linked to the red one and its 红字确认单; the red one is in force."""
    assert await post(cli, cn_digital(BLUE)) == [[]]
    assert await post(cli, red("22", "-112.00")) == [[]]
    answer = await lookup(cli, BLUE)
    assert (answer["status"], answer["invoice"]["lifecycle"]) == ("reversed", "reversed")
    [related] = answer["related"]
    assert (related["relation"], related["id"], related["notice_id"]) == (
        "reversed_by",
        "cn:23442000000014209622",
        FORM,
    )
    params = {"number": "23442000000014209622", "total_amount": "-112.00"}
    resp = await cli.get("/api/v1/invoices/lookup", params=params | {"issued_on": "2023-02-20"})
    answer = await resp.json()
    assert (answer["status"], answer["invoice"]["kind"]) == ("valid", "red_letter")
    [related] = answer["related"]
    assert (related["relation"], related["id"], related["notice_id"]) == (
        "reverses",
        f"cn:{BLUE}",
        FORM,
    )


async def test_partial_reds_add_up_and_reaching_the_total_is_full(cli: Client) -> None:
    """部分红冲, then 全额: each red-letter invoice adds its total (absolute) to what the blue
    invoice has been reversed by; reaching the blue total makes the reversal full."""
    assert await post(cli, cn_digital(BLUE)) == [[]]
    assert await post(cli, red("22", "-50.00")) == [[]]
    assert (await lookup(cli, BLUE))["status"] == "partially_reversed"
    assert await post(cli, red("23", "-40.00"), red("24", "-22.00")) == [[], []]
    answer = await lookup(cli, BLUE)
    assert answer["status"] == "reversed"
    assert [r["relation"] for r in answer["related"]] == ["reversed_by"] * 3


async def test_red_totals_never_exceed_the_blue_total(cli: Client) -> None:
    """A red-letter invoice reverses at most what is left of its blue invoice: alone
    (-112.01 of 112.00) or with the ones before it (-100.00, then -20.00)."""
    assert await post(cli, cn_digital(BLUE)) == [[]]
    assert await post(cli, red("22", "-112.01")) == [["chain.red_letter.exceeds_blue"]]
    assert (await lookup(cli, BLUE))["status"] == "valid"
    assert await post(cli, red("23", "-100.00")) == [[]]
    assert await post(cli, red("24", "-20.00")) == [["chain.red_letter.exceeds_blue"]]
    answer = await lookup(cli, BLUE)
    assert (answer["status"], len(answer["related"])) == ("partially_reversed", 1)
    assert await post(cli, red("25", "-12.00")) == [[]]
    assert (await lookup(cli, BLUE))["status"] == "reversed"
    assert await post(cli, red("26", "-0.01")) == [["chain.original.not_in_force"]]


async def test_a_red_letter_invoice_needs_its_form_number(cli: Client) -> None:
    """A red-letter invoice is issued against a 红字信息表 / 红字确认单: its number is part of
    the invoice (`red_form_number`), and only a red-letter invoice carries one."""
    assert await post(cli, cn_digital(BLUE)) == [[]]
    for blank in (None, "   ", "\u200b"):  # absent, or a number that shows nothing
        assert await post(cli, red("22", "-112.00", red_form_number=blank)) == [
            ["cn.red_letter.form_required"]
        ]
    blue_with_form = cn_digital("23442000000014209629", red_form_number=FORM)
    assert await post(cli, blue_with_form) == [["cn.red_letter.form_unexpected"]]
    assert (await lookup(cli, BLUE))["status"] == "valid"


async def test_a_red_letter_invoice_of_an_unknown_blue_invoice_is_refused(cli: Client) -> None:
    """cn-invoice §4.4 makes 红冲 a status *of the blue invoice* ("reversed by a red-letter
    invoice (全额 = fully, 部分 = partly)"), which the index can only give an invoice it holds,
    and only by comparing the red totals with the blue total. Unlike a Vietnamese correction
    of a legacy invoice (vn-einvoice §5.6: `LHDCLQuan` 2-4 name invoices outside Decree 123,
    so such an original is linked as external), the CN spec has no marker of a blue invoice
    outside the VAT invoice system (§6 rules 1-2 know only the code/number and 20-digit
    identities this index holds). So: refused, `chain.original.not_found`, as any correction
    of an original this index does not hold."""
    assert await post(cli, red("22", "-10.00")) == [["chain.original.not_found"]]


async def test_red_letter_is_chinese_only(cli: Client) -> None:
    """vn-einvoice §5.6: a Vietnamese invoice is corrected by replacement or adjustment."""
    assert await post(cli, vn_invoice(1)) == [[]]
    wrong = vn_invoice(2, kind="red_letter", red_form_number=FORM)
    assert await post(cli, wrong) == [["invoice.kind.invalid"]]


async def test_a_red_letter_invoice_is_not_dated_before_its_blue_invoice(cli: Client) -> None:
    assert await post(cli, cn_digital(BLUE)) == [[]]
    early = red("22", "-112.00", issued_at="2023-02-14T09:00:00+08:00")
    assert await post(cli, early) == [["chain.red_letter.before_original"]]
    assert (await lookup(cli, BLUE))["status"] == "valid"


# --- what else may happen to a red-lettered chain (docs/rules.md "Chain transitions") -------

SPECIAL = {"invoice_code": CN_CODE_SPECIAL, "type_code": "01", "check_code": None}
BLUE_PAPER = {"invoice_code": CN_CODE_SPECIAL, "invoice_number": "00000001"}


def paper(number: str, **over: Any) -> dict[str, Any]:
    """A paper 专票 (10-digit code, type 01): one that may be voided (作废, §4.4)."""
    return cn_invoice(number, **(SPECIAL | over))


def paper_red(number: str, of: str, total: str, **over: Any) -> dict[str, Any]:
    fields = {
        "kind": "red_letter",
        "original": BLUE_PAPER | {"invoice_number": of},
        "red_form_number": "4403122303230001",
        "issued_at": "2023-03-24T10:00:00+08:00",
        "amount_before_tax": "-100.00",
        "tax_amount": "-6.00",
        "total_amount": total,
    }
    return paper(number, **(fields | over))


def void(number: str) -> dict[str, Any]:
    key = {"invoice_code": CN_CODE_SPECIAL, "invoice_number": number}
    return cancel(1, key=key, notice_id=f"ZF-{number}")


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        ("void the blue", "chain.cancel.has_red_letter"),
        ("void the red", "chain.cancel.is_red_letter"),
        ("red the red", "chain.original.is_red_letter"),
        ("adjust the blue", "chain.original.reversed"),
    ],
)
async def test_a_partly_reversed_chain_is_changed_by_red_letters_only(
    cli: Client, document: str, rule: str
) -> None:
    """A blue invoice with a red-letter invoice on it is not voided (the red one would stand
    on nothing) nor adjusted or replaced: what is left of it is reversed by further red-letter
    invoices. A red-letter invoice is neither voided nor reversed itself."""
    assert await post(cli, paper("00000001"), paper_red("00000002", "00000001", "-106.00")) == [
        [],
        [],
    ]
    incoming = {
        "void the blue": {"notices": [void("00000001")]},
        "void the red": {"notices": [void("00000002")]},
        "red the red": {"invoices": [paper_red("00000003", "00000002", "-1.00")]},
        "adjust the blue": {
            "invoices": [paper("00000003", kind="adjustment", original=BLUE_PAPER)]
        },
    }[document]
    resp = await cli.post("/api/v1/packages", json=package(**incoming))
    notice = await resp.json()
    assert [[e["rule"] for e in i["errors"]] for i in notice["items"]] == [[rule]]
    params = {"code": CN_CODE_SPECIAL, "number": "00000001", "amount": "205.30"}
    answer = await (await cli.get("/api/v1/invoices/lookup", params=params)).json()
    assert answer["status"] == "partially_reversed"


async def test_an_adjusted_invoice_is_not_red_lettered(cli: Client) -> None:
    """An adjustment stands on its original (vn-einvoice §5.6, the chain table's
    `chain.original.adjusted`): reversing the original under it would leave the adjustment
    adjusting a reversed invoice, so the red-letter invoice is refused."""
    adjustment = paper("00000002", kind="adjustment", original=BLUE_PAPER)
    assert await post(cli, paper("00000001"), adjustment) == [[], []]
    assert await post(cli, paper_red("00000003", "00000001", "-106.00")) == [
        ["chain.original.adjusted"]
    ]
    params = {"code": CN_CODE_SPECIAL, "number": "00000001"}
    answer = await (await cli.get("/api/v1/invoices/lookup", params=params)).json()
    assert answer["status"] == "adjusted"
