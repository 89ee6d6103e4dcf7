"""Ledger rows as lookups: each line of a purchase ledger becomes the `LookupQuery` a lookup
with the same fields would make (`verify.lookup.query.parse_lookup`, the one place keys, amounts
and dates are validated), plus what only a ledger compares: the tax amount, and the seller
of a Chinese invoice (a Vietnamese key holds its seller; a Chinese one does not).

A line with template or series is Vietnamese (seller, template, series, number); any other
is Chinese (code and 8-digit number, or a 20-digit number alone). The ledger's buyer is
matched on every line, so an invoice made out to someone else shows as a `buyer_tax_id`
mismatch. A line that cannot be read gets its own error (the lookup's error code); a second
line naming an invoice already listed is `duplicate_line`. No line stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from multidict import MultiDict

from fallback.lookup.query import LookupQuery
from indexer.ledger_file import LedgerRow, LedgerTable
from indexer.model import Invoice
from indexer.money import AmountError, format_amount, parse_amount
from indexer.rules import RuleConfig
from verify.http.errors import ApiError
from verify.lookup.query import parse_lookup

#: Ledger columns passed to the lookup under the lookup's own parameter names.
_MATCHED = {"issued_on": "issued_on", "amount": "amount", "total_amount": "total_amount"}
_VN_KEY = ("seller_tax_id", "template", "series", "number")


@dataclass(frozen=True, slots=True)
class LedgerLine:
    row: int
    query: LookupQuery  # always with a key (ledgers name invoices by key, not by code)
    tax_amount: Decimal | None
    seller_tax_id: str | None  # a Chinese line's seller, to compare (None for Vietnamese)
    given: dict[str, str]  # the line's cells, as read

    @property
    def doc_id(self) -> str:
        assert self.query.key is not None
        return self.query.key.doc_id


@dataclass(frozen=True, slots=True)
class LineError:
    row: int
    code: str
    message: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "status": "error",
                "error": {"code": self.code, "message": self.message, "details": self.details}}


def _date_part(value: str) -> str:
    """`2022-05-15T09:30:00+07:00`, `2022-05-15 09:30` and `2022/05/15` name a day too."""
    return value.replace("T", " ").split()[0].replace("/", "-") if value.strip() else value


def parse_line(row: LedgerRow, buyer_tax_id: str, cfg: RuleConfig) -> LedgerLine | LineError:
    cells = row.cells
    vietnamese = bool(cells.get("template") or cells.get("series"))
    params: dict[str, str] = (
        {name: cells.get(name, "") for name in _VN_KEY} if vietnamese
        else {"code": cells.get("invoice_code", ""), "number": cells.get("number", "")})
    params |= {param: cells.get(column, "") for column, param in _MATCHED.items()}
    params["issued_on"] = _date_part(params["issued_on"])
    params["buyer_tax_id"] = buyer_tax_id
    try:
        query = parse_lookup(MultiDict((k, v) for k, v in params.items() if v), cfg)
        tax = parse_amount(cells["tax_amount"]) if cells.get("tax_amount") else None
    except ApiError as exc:
        return LineError(row.row, exc.code, exc.message, exc.details)
    except AmountError as exc:
        return LineError(row.row, "invalid_parameter", str(exc), {"parameter": "tax_amount"})
    seller = None if vietnamese else (cells.get("seller_tax_id") or "").upper() or None
    return LedgerLine(row.row, query, tax, seller, cells)


def parse_lines(table: LedgerTable, buyer_tax_id: str,
                cfg: RuleConfig) -> list[LedgerLine | LineError]:
    """Every row of the ledger, in order, as a line to check or an error."""
    first_row: dict[str, int] = {}
    lines: list[LedgerLine | LineError] = []
    for row in table.rows:
        line = parse_line(row, buyer_tax_id, cfg)
        if isinstance(line, LedgerLine):
            seen = first_row.setdefault(line.doc_id, line.row)
            if seen != line.row:
                line = LineError(line.row, "duplicate_line", "the ledger lists this invoice "
                                 "already", {"id": line.doc_id, "first_row": seen})
        lines.append(line)
    return lines


def ledger_mismatches(line: LedgerLine, invoice: Invoice) -> list[dict[str, str | None]]:
    """What a ledger compares beyond a lookup's fields (`fallback.lookup.answer.mismatches`)."""
    out: list[dict[str, str | None]] = []
    if line.tax_amount is not None and line.tax_amount != invoice.amounts.tax:
        out.append({"field": "tax_amount", "given": format_amount(line.tax_amount),
                    "recorded": format_amount(invoice.amounts.tax)})
    if line.seller_tax_id is not None and line.seller_tax_id != invoice.seller_tax_id:
        out.append({"field": "seller_tax_id", "given": line.seller_tax_id,
                    "recorded": invoice.seller_tax_id})
    return out
