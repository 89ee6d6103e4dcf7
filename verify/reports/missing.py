"""The missing-invoice report: the numbering-gap report (`indexer.reports`) of one seller,
and its outage gaps (`verify.reports.outage_gaps`), rendered as JSON or CSV a chunk at a
time. `GET /api/v1/reports/missing` (`verify.reports.views`) and `invoice-verify report
missing` build the same request and render it alike.
"""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from multidict import MultiMapping

from indexer import cn, vn
from indexer.reports import SequenceGaps, numbering_gaps
from indexer.store import InvoiceStore
from indexer.store.numbering_reports import NumberingScope
from verify.http.csv_cells import dict_writer
from verify.http.params import read_query
from verify.reports.outage_gaps import CSV_COLUMNS as GAP_CSV_COLUMNS
from verify.reports.outage_gaps import OutageGap
from verify.reports.query import Period, bad_query, read_period, report_format

PARAMS = ("seller_tax_id", "template", "series", "code", "year", "from", "to", "format")
ALL_TIME = Period()
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


def missing_request(seller_tax_id: str, *, template: str | None = None,
                    series: str | None = None, code: str | None = None,
                    period: Period = ALL_TIME, fmt: str = "json") -> ReportRequest:
    """The report's request, checked: a missing or malformed seller, template, series,
    code, period or format is 400 `invalid_report_query`."""
    seller = seller_tax_id.strip()
    if not seller:
        raise bad_query("seller_tax_id is required", parameter="seller_tax_id")
    if not (vn.tax_id_valid(seller) or cn.TAX_ID_RE.fullmatch(seller)):
        raise bad_query("seller_tax_id is neither a Vietnamese MST nor a Chinese tax id",
                        parameter="seller_tax_id", given=seller)
    if template is not None and template not in vn.TEMPLATES:
        raise bad_query("template is one digit 1-9", parameter="template", given=template)
    if series is not None and not vn.SERIES_RE.fullmatch(series):
        raise bad_query("series is six characters like C22TAA", parameter="series",
                        given=series)
    if code is not None and not cn.CODE_RE.fullmatch(code):
        raise bad_query("code is a 10- or 12-digit invoice code", parameter="code",
                        given=code)
    if code is not None and (template is not None or series is not None):
        raise bad_query("code (Chinese) and template/series (Vietnamese) exclude each other")
    report_format(fmt)
    issued_from, issued_until = period.bounds()
    return ReportRequest(NumberingScope(seller, template, series, code, issued_from,
                                        issued_until), fmt)


def read_missing_query(query: MultiMapping[str]) -> ReportRequest:
    """The report's request from a query: names and values read by `verify.http.params`
    (unknown, repeated, over-long or not text: 400), then checked as `missing_request`."""
    q = read_query(query, PARAMS)
    return missing_request(q.raw("seller_tax_id") or "", template=q.raw("template"),
                           series=q.raw("series"), code=q.raw("code"), period=read_period(q),
                           fmt=q.values.get("format", "json"))


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
    """`outage`: the scope's outage gaps (`verify.reports.outage_gaps.outage_gaps`)."""
    sequences = numbering_gaps(store, request.scope)
    if request.format == "csv":
        return render_csv(sequences, totals, outage)
    return render_json(request, sequences, totals, outage)
