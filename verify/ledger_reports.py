"""`POST /api/v1/reports/ledger`: a buyer's purchase ledger reconciled against the index
(`verify.ledger_check`), streamed as JSON or CSV. The same parsing and rendering serve
`invoice-verify report ledger`.

The ledger comes as a raw `text/csv` or XLSX body, or as the multipart field `ledger`; its
format is recognised from its content. Parameters: `buyer_tax_id`, the period (`from` and
`to`, inclusive, or `year`), `format` json|csv. Access as for the missing-invoice report:
admins, and audit keys for the buyers in their scope; every report is in the audit trail
(`report.ledger`, target = the buyer, outcome = the totals).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web

from indexer import cn, vn
from indexer.ledger_file import LedgerFileError, LedgerTable, read_ledger
from indexer.rules import RuleConfig
from verify.access.middleware import PRINCIPAL
from verify.access.service import Admission, is_party
from verify.access.tenancy import redact_answer
from verify.batch import csv_row
from verify.http.body import read_body, read_form_field
from verify.http.csv_cells import dict_writer
from verify.http.errors import ApiError
from verify.http.responses import SECURITY_HEADERS
from verify.keys import ACCESS, RESILIENCE, SETTINGS
from verify.ledger_check import (
    LedgerScope,
    LedgerTotals,
    LineChecker,
    check_lines,
    listed_ids,
    not_in_ledger,
)
from verify.ledger_lines import LedgerLine, LineError, parse_lines
from verify.reports import FORMATS, _bad, _period, check_names, require_scope

PARAMS = ("buyer_tax_id", "from", "to", "year", "format")
MAX_BODY = 32 * 1024 * 1024
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UPLOAD_TYPES = ("text/csv", XLSX_TYPE, "multipart/form-data")
CSV_COLUMNS = ("section", "row", "status", "reason", "id", "scheme", "seller_tax_id",
               "template", "series", "invoice_code", "number", "issued_on", "amount",
               "tax_amount", "total_amount", "lifecycle", "mismatches", "related", "gap_id",
               "source", "error_code", "error_message")
_CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


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


def parse_ledger_query(query: Mapping[str, str], keys: list[str]) -> LedgerRequest:
    """The report's parameters, checked like the missing-invoice report's (400
    `invalid_report_query`); the period is required."""
    check_names(keys, PARAMS)
    buyer = (query.get("buyer_tax_id") or "").strip()
    if not (vn.tax_id_valid(buyer) or cn.TAX_ID_RE.fullmatch(buyer)):
        raise _bad("buyer_tax_id (a Vietnamese MST or a Chinese tax id) is required",
                   parameter="buyer_tax_id", given=buyer)
    fmt = query.get("format", "json")
    if fmt not in FORMATS:
        raise _bad("format is json or csv", parameter="format", given=fmt)
    issued_from, issued_until = _period(query.get("year"), query.get("from"), query.get("to"))
    if issued_from is None or issued_until is None:
        raise _bad("give the ledger's period: year, or from and to")
    return LedgerRequest(LedgerScope(vn.normalise_tax_id(buyer), issued_from, issued_until),
                         fmt)


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


async def read_upload(request: web.Request) -> bytes:
    """The ledger file: a raw CSV or XLSX body, or the multipart field `ledger` (other
    fields are read, counted and dropped; the client's file name is never used)."""
    if request.content_type in (XLSX_TYPE, "text/csv"):
        return await read_body(request, MAX_BODY)
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the ledger as text/csv, as XLSX "
                       "or as multipart/form-data (field `ledger`)",
                       {"accepted": list(UPLOAD_TYPES), "given": request.content_type})
    return (await read_form_field(request, "ledger", MAX_BODY)).data


class BudgetedLines(LineChecker):
    """Ledger lines spend what the same lookups would (issue 15): each line the misses guard
    and the invoice's budgets (`Access.admit_many`, one limiter call per chunk), a line that
    finds nothing one of the key's misses (none left: the line says `miss_rate_limited`
    instead of `not_found`, so a ledger cannot enumerate invoices), and each line is in the
    audit trail like a lookup (`verify`, the invoice, the line's status). A line refused by
    a budget is an error line; the others are answered."""

    def __init__(self, request: web.Request) -> None:
        principal = request[PRINCIPAL]
        super().__init__(request.app[RESILIENCE], principal.key_id,
                         lambda answer: redact_answer(answer, principal))
        self.principal = principal
        self.access = request.app[ACCESS]
        self.client = request.remote

    async def check(self, lines: Sequence[LedgerLine]) -> list[dict[str, Any]]:
        admissions = await self.access.admit_many(self.principal, [ln.doc_id for ln in lines])
        checked = iter(await super().check(
            [ln for ln, a in zip(lines, admissions, strict=True) if a.refusal is None]))
        results = []
        for line, admission in zip(lines, admissions, strict=True):
            result = (_refused(line, admission.refusal) if admission.refusal is not None
                      else await self._settle(line, admission, next(checked)))
            outcome = result["error"]["code"] if "error" in result else result["status"]
            self.access.audit.record(self.principal, "verify", line.doc_id, outcome,
                                     self.client)
            results.append(result)
        return results

    async def _settle(self, line: LedgerLine, admission: Admission,
                      result: dict[str, Any]) -> dict[str, Any]:
        invoice = result["invoice"]  # redacted already: a party sees its own tax ids
        if admission.invoice_wait and not (invoice and is_party(
                self.principal, invoice.get("seller_tax_id"), invoice.get("buyer_tax_id"))):
            return _refused(line, self.access.invoice_limited(admission.invoice_wait))
        if invoice is None:
            wait = await self.access.note_miss(self.principal, line.doc_id)
            if wait and result["status"] == "not_found":
                return _refused(line, self.access.misses_limited(wait))
        return result


def _refused(line: LedgerLine, error: ApiError) -> dict[str, Any]:
    return LineError(line.row, error.code, error.message, error.details).as_dict()


async def ledger_report(request: web.Request) -> web.StreamResponse:
    report = parse_ledger_query(request.query, [k for k, _ in request.query.items()])
    principal = request[PRINCIPAL]
    buyer = report.scope.buyer_tax_id
    require_scope(principal, "buyer_tax_id", buyer)
    body = await read_upload(request)
    try:
        table, lines = await asyncio.to_thread(read_lines, body, buyer,
                                               request.app[SETTINGS].rules)
    except LedgerFileError as exc:
        raise file_error(exc) from None
    checker = BudgetedLines(request)
    totals = LedgerTotals()
    response = web.StreamResponse(headers={
        **SECURITY_HEADERS, "Content-Type": _CONTENT_TYPES[report.format],
        "Content-Disposition": f'inline; filename="ledger-{buyer}.{report.format}"',
        "X-Ledger-Lines": str(len(lines))})
    await response.prepare(request)
    outcome = "aborted"
    try:
        async with aclosing(render(report, table, lines, checker, totals)) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        outcome = totals.summary()
    finally:
        request.app[ACCESS].audit.record(principal, "report.ledger", buyer, outcome,
                                         request.remote)
    return response
