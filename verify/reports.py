"""`GET /api/v1/reports/missing`: the numbering-gap report (`indexer.reports`), streamed as
JSON or CSV. The same parsing and rendering serve `invoice-verify report missing`.

Access: admins, and audit keys for the tax ids in their scope (403 otherwise); every report
is recorded in the audit trail (`report.missing`, target = the seller).
"""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson
from aiohttp import web

from indexer import cn, vn
from indexer.reports import SequenceGaps, numbering_gaps
from indexer.store import InvoiceStore
from indexer.store.elasticsearch import ElasticsearchUnavailable
from indexer.store.numbering_reports import NumberingScope
from indexer.text import ascii_int
from verify.access.middleware import PRINCIPAL
from verify.access.roles import Principal
from verify.http.csv_cells import dict_writer
from verify.http.errors import ApiError
from verify.http.params import check_names as check_names
from verify.http.responses import SECURITY_HEADERS
from verify.keys import ACCESS, GAPS, OUTAGES, STORE
from verify.report_gaps import CSV_COLUMNS as GAP_CSV_COLUMNS
from verify.report_gaps import OutageGap, outage_gaps

PARAMS = ("seller_tax_id", "template", "series", "code", "year", "from", "to", "format")
FORMATS = ("json", "csv")
CSV_COLUMNS = ("scheme", "seller_tax_id", "template", "series", "invoice_code", "row",
               "first", "last", "count", "issued", "expected_first", *GAP_CSV_COLUMNS)
#: Sequences per write to the response.
CHUNK = 50


@dataclass(frozen=True, slots=True)
class ReportRequest:
    scope: NumberingScope
    format: str

    def scope_dict(self) -> dict[str, Any]:
        s = self.scope
        until = s.issued_until - timedelta(days=1) if s.issued_until else None
        return {"seller_tax_id": s.seller_tax_id, "template": s.template, "series": s.series,
                "invoice_code": s.invoice_code,
                "from": s.issued_from.isoformat() if s.issued_from else None,
                "to": until.isoformat() if until else None}


def _bad(message: str, **details: Any) -> ApiError:
    return ApiError(400, "invalid_report_query", message, details)


def _date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(f"{name} must be a date YYYY-MM-DD", parameter=name, given=value) from None


def _period(year: str | None, start: str | None, end: str | None
            ) -> tuple[date | None, date | None]:
    """[from, until): `year`, or `from`/`to` (both inclusive, either may be open)."""
    if year is not None:
        if start is not None or end is not None:
            raise _bad("give year, or from/to, not both")
        number = ascii_int(year, max_digits=4) if len(year) == 4 else None
        if not number:  # None, or 0000
            raise _bad("year must be four digits", parameter="year", given=year)
        return date(number, 1, 1), date(number + 1, 1, 1) if number != 9999 else None
    issued_from = _date("from", start) if start is not None else None
    to = _date("to", end) if end is not None else None
    if issued_from and to and to < issued_from:
        raise _bad("to lies before from")
    return issued_from, (to + timedelta(days=1) if to and to < date.max else None)


def parse_report_query(query: Mapping[str, str], keys: list[str]) -> ReportRequest:
    """The report's parameters, checked: unknown or repeated names (`verify.http.params`, the
    check every route makes; the ledger report imports it from here), a malformed seller,
    template, series, code, period or format are 400."""
    check_names(keys, PARAMS)
    seller = (query.get("seller_tax_id") or "").strip()
    if not seller:
        raise _bad("seller_tax_id is required", parameter="seller_tax_id")
    if not (vn.tax_id_valid(seller) or cn.TAX_ID_RE.fullmatch(seller)):
        raise _bad("seller_tax_id is neither a Vietnamese MST nor a Chinese tax id",
                   parameter="seller_tax_id", given=seller)
    template, series, code = query.get("template"), query.get("series"), query.get("code")
    if template is not None and template not in vn.TEMPLATES:
        raise _bad("template is one digit 1-9", parameter="template", given=template)
    if series is not None and not vn.SERIES_RE.fullmatch(series):
        raise _bad("series is six characters like C22TAA", parameter="series", given=series)
    if code is not None and not cn.CODE_RE.fullmatch(code):
        raise _bad("code is a 10- or 12-digit invoice code", parameter="code", given=code)
    if code is not None and (template is not None or series is not None):
        raise _bad("code (Chinese) and template/series (Vietnamese) exclude each other")
    fmt = query.get("format", "json")
    if fmt not in FORMATS:
        raise _bad("format is json or csv", parameter="format", given=fmt)
    issued_from, issued_until = _period(query.get("year"), query.get("from"), query.get("to"))
    return ReportRequest(NumberingScope(seller, template, series, code, issued_from,
                                        issued_until), fmt)


@dataclass(slots=True)
class Totals:
    sequences: int = 0
    issued: int = 0
    missing: int = 0
    cancelled: int = 0
    gaps_open: int = 0
    gaps_missing: int = 0

    def add_gap(self, gap: OutageGap) -> None:
        if gap.is_open:
            self.gaps_open += 1
        else:
            self.gaps_missing += 1

    def add(self, gaps: SequenceGaps) -> None:
        self.sequences += 1
        self.issued += gaps.issued
        self.missing += gaps.missing_count
        self.cancelled += gaps.cancelled_count

    def as_dict(self) -> dict[str, int]:
        return {"sequences": self.sequences, "issued": self.issued, "missing": self.missing,
                "cancelled": self.cancelled, "gaps_open": self.gaps_open,
                "gaps_missing": self.gaps_missing}


async def render_json(request: ReportRequest, sequences: AsyncIterator[SequenceGaps],
                      totals: Totals, outage: AsyncIterator[OutageGap],
                      ) -> AsyncGenerator[bytes, None]:
    """`{"scope", "sequences": [...], "outage_gaps": [...], "totals"}`, one sequence at a
    time; nothing is yielded before the store has answered its first page."""
    head = b'{"scope":' + orjson.dumps(request.scope_dict()) + b',"sequences":['
    sep = b""
    async for gaps in sequences:  # the head goes with the first sequence: see missing_report
        totals.add(gaps)
        yield head + sep + orjson.dumps(gaps.as_dict())
        head, sep = b"", b","
    yield head + b'],"outage_gaps":['
    sep = b""
    async for gap in outage:
        totals.add_gap(gap)
        yield sep + orjson.dumps(gap.as_dict())
        sep = b","
    yield b'],"totals":' + orjson.dumps(totals.as_dict()) + b"}\n"


def _csv_rows(gaps: SequenceGaps) -> list[dict[str, Any]]:
    key = gaps.key_fields()
    rows = [{**key, "row": "sequence", "first": gaps.first, "last": gaps.last,
             "count": gaps.missing_count, "issued": gaps.issued,
             "expected_first": gaps.expected_first}]
    rows += [{**key, "row": "missing", "first": r.first, "last": r.last, "count": r.count}
             for r in gaps.missing]
    rows += [{**key, "row": "cancelled", "first": r.first, "last": r.last, "count": r.count}
             for r in gaps.cancelled]
    return rows


async def render_csv(sequences: AsyncIterator[SequenceGaps], totals: Totals,
                     outage: AsyncIterator[OutageGap]) -> AsyncGenerator[bytes, None]:
    """One `sequence` row (first, last, issued, count = missing numbers) per sequence, then
    one row per `missing` and per `cancelled` range; then one `gap` row per outage gap."""
    buffer = io.StringIO()
    writer = dict_writer(buffer, CSV_COLUMNS)
    writer.writeheader()
    pending = 0
    async for gaps in sequences:
        totals.add(gaps)
        writer.writerows(_csv_rows(gaps))
        pending += 1
        if pending >= CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    async for gap in outage:
        totals.add_gap(gap)
        writer.writerow({**gap.key_fields(), "row": "gap", **gap.csv_fields()})
    yield buffer.getvalue().encode()


def render(request: ReportRequest, store: InvoiceStore, totals: Totals,
           outage: AsyncIterator[OutageGap]) -> AsyncGenerator[bytes, None]:
    """`outage`: the scope's outage gaps (`verify.report_gaps.outage_gaps`)."""
    sequences = numbering_gaps(store, request.scope)
    if request.format == "csv":
        return render_csv(sequences, totals, outage)
    return render_json(request, sequences, totals, outage)


_CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def require_scope(principal: Principal, role_of_party: str, tax_id: str) -> None:
    """Reports are for admins, and for audit keys only on the tax ids in their scope (the
    ledger report's check; `missing_report` makes the same one)."""
    if not principal.sees_tax_id(tax_id):
        raise ApiError(403, "not_in_scope", "this key may only report on its own tax ids",
                       {role_of_party: tax_id})


async def missing_report(request: web.Request) -> web.StreamResponse:
    report = parse_report_query(request.query, [k for k, _ in request.query.items()])
    principal = request[PRINCIPAL]
    seller = report.scope.seller_tax_id
    if not principal.sees_tax_id(seller):
        raise ApiError(403, "not_in_scope", "this key may only report on its own tax ids",
                       {"seller_tax_id": seller})
    audit = request.app[ACCESS].audit
    totals = Totals()
    gaps = outage_gaps(request.app[GAPS], request.app[OUTAGES], report.scope)
    async with aclosing(render(report, request.app[STORE], totals, gaps)) as chunks:
        try:
            # The first chunk needs the store's first page: a primary that cannot answer is
            # still a clean 503 here, before any byte of the report is sent.
            first = await anext(chunks)
        except ElasticsearchUnavailable:
            audit.record(principal, "report.missing", seller, "unavailable", request.remote)
            raise ApiError(503, "primary_unavailable", "the index cannot answer now; the "
                           "report needs the primary (try again)") from None
        name = f"missing-{seller}.{report.format}"
        response = web.StreamResponse(headers={
            **SECURITY_HEADERS, "Content-Type": _CONTENT_TYPES[report.format],
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
