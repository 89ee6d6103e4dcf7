"""The ledger reconciliation report: a buyer's purchase ledger reconciled against the index
(`verify.reports.ledger_check`), rendered as JSON or CSV a chunk at a time.
`POST /api/v1/reports/ledger` (`verify.reports.views`) and `invoice-verify report ledger`
build the same request, read the file alike and render it alike.

Parameters: `buyer_tax_id`, the period (`from` and `to`, inclusive, or `year`), `format`
json|csv. The ledger's format (CSV or XLSX) is recognised from its content.
"""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from multidict import MultiMapping

from indexer import cn, vn
from indexer.ledger_file import LedgerFileError, LedgerTable, read_ledger
from indexer.rules import RuleConfig
from verify.http.csv_cells import dict_writer
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.lookup.batch import csv_row
from verify.reports.ledger_check import (
    LedgerScope,
    LedgerTotals,
    LineChecker,
    check_lines,
    listed_ids,
    not_in_ledger,
)
from verify.reports.ledger_lines import LedgerLine, LineError, parse_lines
from verify.reports.query import Period, bad_query, read_period, report_format

PARAMS = ("buyer_tax_id", "from", "to", "year", "format")
CSV_COLUMNS = ("section", "row", "status", "reason", "id", "scheme", "seller_tax_id",
               "template", "series", "invoice_code", "number", "issued_on", "amount",
               "tax_amount", "total_amount", "lifecycle", "mismatches", "related", "gap_id",
               "source", "error_code", "error_message")


@dataclass(frozen=True, slots=True)
class LedgerRequest:
    scope: LedgerScope
    format: str

    def scope_dict(self, table: LedgerTable) -> dict[str, Any]:
        s = self.scope
        return {"buyer_tax_id": s.buyer_tax_id, "from": s.issued_from.isoformat(),
                "to": (s.issued_until - timedelta(days=1)).isoformat(),
                "ledger": {"format": table.format, "lines": len(table.rows),
                           "columns": table.columns, "ignored_columns": list(table.ignored)}}


def ledger_request(buyer_tax_id: str, *, period: Period, fmt: str = "json") -> LedgerRequest:
    """The report's request, checked like the missing-invoice report's (400
    `invalid_report_query`); the period is required."""
    buyer = buyer_tax_id.strip()
    if not (vn.tax_id_valid(buyer) or cn.TAX_ID_RE.fullmatch(buyer)):
        raise bad_query("buyer_tax_id (a Vietnamese MST or a Chinese tax id) is required",
                        parameter="buyer_tax_id", given=buyer)
    report_format(fmt)
    issued_from, issued_until = period.bounds()
    if issued_from is None or issued_until is None:
        raise bad_query("give the ledger's period: year, or from and to")
    return LedgerRequest(LedgerScope(vn.normalise_tax_id(buyer), issued_from, issued_until),
                         fmt)


def read_ledger_query(query: MultiMapping[str]) -> LedgerRequest:
    """The report's request from a query, read as every route reads one
    (`verify.http.params`), then checked as `ledger_request`."""
    q = read_query(query, PARAMS)
    return ledger_request(q.raw("buyer_tax_id") or "", period=read_period(q),
                          fmt=q.values.get("format", "json"))


def read_lines(body: bytes, buyer_tax_id: str,
               rules: RuleConfig) -> tuple[LedgerTable, list[LedgerLine | LineError]]:
    """The file read and its lines parsed (CPU work: the service runs it in a thread)."""
    table = read_ledger(body)
    return table, parse_lines(table, buyer_tax_id, rules)


def file_error(exc: LedgerFileError) -> ApiError:
    status = 413 if exc.code == "ledger_too_large" else 400
    return ApiError(status, exc.code, exc.message, exc.details)


def _key_columns(scheme: str, key: dict[str, Any]) -> dict[str, Any]:
    return {"scheme": scheme, "seller_tax_id": key.get("seller_tax_id"),
            "template": key.get("template"), "series": key.get("series"),
            "invoice_code": key.get("invoice_code"),
            "number": key.get("number", key.get("invoice_number"))}


def line_csv_row(result: dict[str, Any]) -> dict[str, Any]:
    """A line's CSV row: its key and the values the ledger gives; what differs from the
    record in `mismatches`."""
    flat = csv_row(result)  # the batch's flat form: errors, mismatches and relations
    if "error" in result:
        return {"section": "line", "status": "error", **flat}
    given = result["given"]
    return {"section": "line", "row": result["row"], "status": result["status"],
            "reason": result["reason"], "id": result["id"],
            **_key_columns(result["scheme"], result["key"]),
            **({} if result["scheme"] == "vn" else {"seller_tax_id": given.get("seller_tax_id")}),
            "issued_on": given.get("issued_on"), "amount": given.get("amount"),
            "tax_amount": given.get("tax_amount"), "total_amount": given.get("total_amount"),
            "lifecycle": (result["invoice"] or {}).get("lifecycle"),
            "mismatches": flat["mismatches"], "related": flat["related"],
            "gap_id": result["gap_id"], "source": result["source"]}


def unlisted_csv_row(entry: dict[str, Any]) -> dict[str, Any]:
    """An invoice the ledger lacks, with the values the index records."""
    return {"section": "not_in_ledger", "status": "not_in_ledger", "id": entry["id"],
            **_key_columns(entry["scheme"], entry["key"]),
            "seller_tax_id": entry["seller_tax_id"], "issued_on": entry["issued_on"],
            "amount": entry["amount_before_tax"], "tax_amount": entry["tax_amount"],
            "total_amount": entry["total_amount"], "lifecycle": entry["lifecycle"]}


def _csv_bytes(rows: list[dict[str, Any]], *, header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = dict_writer(buffer, CSV_COLUMNS)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


async def render(request: LedgerRequest, table: LedgerTable,
                 lines: list[LedgerLine | LineError], checker: LineChecker,
                 totals: LedgerTotals) -> AsyncGenerator[bytes, None]:
    """JSON `{"scope", "lines": [...], "not_in_ledger": [...], "not_in_ledger_checked",
    "totals"}`, or CSV with one row per line and per invoice the ledger lacks; a chunk of
    lines (or a page of the scan) at a time."""
    as_json = request.format == "json"
    yield (b'{"scope":' + orjson.dumps(request.scope_dict(table)) + b',"lines":['
           if as_json else _csv_bytes([], header=True))
    sep = b""
    async for results in check_lines(lines, checker, totals):
        yield (sep + b",".join(map(orjson.dumps, results)) if as_json
               else _csv_bytes([line_csv_row(r) for r in results]))
        sep = b","
    if as_json:
        yield b'],"not_in_ledger":['
    sep = b""
    async for entries in not_in_ledger(request.scope, listed_ids(lines), checker, totals):
        yield (sep + b",".join(map(orjson.dumps, entries)) if as_json
               else _csv_bytes([unlisted_csv_row(e) for e in entries]))
        sep = b","
    if as_json:
        yield (b'],"not_in_ledger_checked":' + orjson.dumps(totals.not_in_ledger_checked)
               + b',"totals":' + orjson.dumps(totals.as_dict()) + b"}\n")
