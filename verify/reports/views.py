"""The reports over HTTP: `GET /api/v1/reports/missing` and `POST /api/v1/reports/ledger`,
streamed as JSON or CSV.

Access: admins, and audit keys for the tax ids in their scope (403 otherwise); every report
is recorded in the audit trail (`report.missing`, target = the seller; `report.ledger`,
target = the buyer; outcome = the totals). A ledger comes as a raw `text/csv` or XLSX body,
or as the multipart field `ledger`; its lines spend what the same lookups would
(`BudgetedLines`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

from aiohttp import web

from indexer.ledger_file import LedgerFileError
from indexer.store.protocol import StoreUnavailableError
from verify.access.middleware import PRINCIPAL
from verify.access.service import Admission, is_party
from verify.access.tenancy import redact_answer
from verify.http.body import read_body, read_form_field
from verify.http.errors import ApiError
from verify.http.responses import SECURITY_HEADERS
from verify.keys import ACCESS, GAPS, OUTAGES, REGISTRY, RESILIENCE, SETTINGS, STORE
from verify.lookup.facts import AnswerFacts
from verify.receipts.flag import split_receipt
from verify.receipts.views import require_receipts, with_receipt
from verify.reports import ledger, missing
from verify.reports.ledger_check import LedgerTotals, LineChecker
from verify.reports.ledger_lines import LedgerLine, LineError
from verify.reports.outage_gaps import outage_gaps
from verify.reports.query import CONTENT_TYPES, require_scope
from verify.watches.flag import split_watch
from verify.watches.views import watch_answer

MAX_BODY = 32 * 1024 * 1024
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UPLOAD_TYPES = ("text/csv", XLSX_TYPE, "multipart/form-data")


async def missing_report(request: web.Request) -> web.StreamResponse:
    report = missing.read_missing_query(request.query)
    principal = request[PRINCIPAL]
    seller = report.scope.seller_tax_id
    require_scope(principal, "seller_tax_id", seller)
    audit = request.app[ACCESS].audit
    totals = missing.Totals()
    gaps = outage_gaps(request.app[GAPS], request.app[OUTAGES], report.scope)
    async with aclosing(missing.render(report, request.app[STORE], totals, gaps)) as chunks:
        try:
            # The first chunk needs the store's first page: a primary that cannot answer is
            # still a clean 503 (the error middleware's), before any byte of the report.
            first = await anext(chunks)
        except StoreUnavailableError:
            audit.record(principal, "report.missing", seller, "unavailable", request.remote)
            raise
        name = f"missing-{seller}.{report.format}"
        response = web.StreamResponse(headers={
            **SECURITY_HEADERS, "Content-Type": CONTENT_TYPES[report.format],
            "Content-Disposition": f'inline; filename="{name}"'})
        await response.prepare(request)
        outcome = "aborted"
        try:
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
            outcome = (f"{totals.sequences} sequences, {totals.missing} missing, "
                       f"{totals.cancelled} cancelled, {totals.gaps_open} gaps open, "
                       f"{totals.gaps_missing} gaps missing")
        finally:
            audit.record(principal, "report.missing", seller, outcome, request.remote)
    return response


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
    a budget is an error line; the others are answered as a lookup by the same key with the
    same fields is (`verify.lookup.facts`: window, second factor, seller status) and, with
    `receipt`, each carries the receipt of exactly that line (`with_receipt`); with `watch`,
    each carries the watch made of what it answered, or its `watch_error` (`watch_answer`,
    as a batch row)."""

    def __init__(self, request: web.Request, *, receipt: bool = False,
                 watch: bool = False) -> None:
        principal = request[PRINCIPAL]
        super().__init__(
            request.app[RESILIENCE], principal.key_id,
            lambda answer: redact_answer(answer, principal),
            facts=AnswerFacts.of(request.app[SETTINGS], request.app[REGISTRY]),
            party=lambda inv: is_party(principal, inv.seller_tax_id, inv.buyer_tax_id))
        self.request = request
        self.receipt = receipt
        self.watch = watch
        self.principal = principal
        self.access = request.app[ACCESS]
        self.client = request.remote

    async def check(self, lines: Sequence[LedgerLine]) -> list[dict[str, Any]]:
        admissions = await self.access.admit_many(self.principal, [ln.doc_id for ln in lines])
        checked = iter(await super().check_records(
            [ln for ln, a in zip(lines, admissions, strict=True) if a.refusal is None]))
        results = []
        for line, admission in zip(lines, admissions, strict=True):
            if admission.refusal is not None:
                result = _refused(line, admission.refusal)
            else:
                answered, invoice = next(checked)
                result = await self._settle(line, admission, answered)
                if self.receipt and "error" not in result:
                    try:
                        result = await with_receipt(self.request, result, invoice, line.doc_id)
                    except ApiError as exc:  # the key's receipts of the hour are spent
                        result = _refused(line, exc)
                if self.watch and "error" not in result:
                    result = await watch_answer(self.request, result, line.query.lookup_key,
                                                raise_refusal=False)
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
            if wait and result["status"] in ("not_found", "outside_window"):
                return _refused(line, self.access.misses_limited(wait))
        return result


def _refused(line: LedgerLine, error: ApiError) -> dict[str, Any]:
    return LineError(line.row, error.code, error.message, error.details).as_dict()


async def ledger_report(request: web.Request) -> web.StreamResponse:
    watch, params = split_watch(request.query)  # each line's invoice watched (watches.md)
    receipt, params = split_receipt(params)  # each line with its receipt (receipts.md)
    report = ledger.read_ledger_query(params)
    principal = request[PRINCIPAL]
    buyer = report.scope.buyer_tax_id
    require_scope(principal, "buyer_tax_id", buyer)
    if receipt:
        if report.format != "json":
            raise ApiError(400, "invalid_parameter", "receipts come with the JSON report "
                           "(format=json): a CSV row has no room for one",
                           {"parameter": "receipt"})
        require_receipts(request)
    if watch and report.format != "json":
        raise ApiError(400, "invalid_parameter", "watches come with the JSON report "
                       "(format=json): a CSV row has no room for the watch or its refusal",
                       {"parameter": "watch"})
    body = await read_upload(request)
    try:
        table, lines = await asyncio.to_thread(ledger.read_lines, body, buyer,
                                               request.app[SETTINGS].rules)
    except LedgerFileError as exc:
        raise ledger.file_error(exc) from None
    checker = BudgetedLines(request, receipt=receipt, watch=watch)
    totals = LedgerTotals()
    response = web.StreamResponse(headers={
        **SECURITY_HEADERS, "Content-Type": CONTENT_TYPES[report.format],
        "Content-Disposition": f'inline; filename="ledger-{buyer}.{report.format}"',
        "X-Ledger-Lines": str(len(lines))})
    await response.prepare(request)
    outcome = "aborted"
    try:
        async with aclosing(ledger.render(report, table, lines, checker, totals)) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        outcome = totals.summary()
    finally:
        request.app[ACCESS].audit.record(principal, "report.ledger", buyer, outcome,
                                         request.remote)
    return response
