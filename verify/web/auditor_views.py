"""The auditor's page: the missing-invoice report of `GET /api/v1/reports/missing` for a
seller and period, per series a strip of its numbers (issued, missing, cancelled), the
missing ranges as a table and the outage gaps with their state; the CSV export is the
API's own answer (`missing_report`) for the same query."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDict

from indexer.store.elasticsearch import ElasticsearchUnavailable
from verify.access.middleware import PRINCIPAL
from verify.http.errors import ApiError
from verify.keys import ACCESS, GAPS, OUTAGES, STORE
from verify.reports import missing
from verify.reports import views as report_views
from verify.reports.outage_gaps import outage_gaps
from verify.reports.query import require_scope
from verify.web.render import page
from verify.web.svg import WIDTH, series_strip

QUERY = ("seller_tax_id", "template", "series", "code", "from", "to", "year")


def _given(request: web.Request) -> dict[str, str]:
    return {k: request.query[k].strip() for k in QUERY if request.query.get(k, "").strip()}


async def _report(request: web.Request, given: dict[str, str]) -> dict[str, Any]:
    """The report as `missing_report` makes it (JSON), with the same scope check and audit
    record."""
    report = missing.read_missing_query(MultiDict(given))
    principal = request[PRINCIPAL]
    seller = report.scope.seller_tax_id
    require_scope(principal, "seller_tax_id", seller)
    totals = missing.Totals()
    gaps = outage_gaps(request.app[GAPS], request.app[OUTAGES], report.scope)
    audit = request.app[ACCESS].audit
    outcome = "aborted"
    try:
        async with aclosing(missing.render(report, request.app[STORE], totals, gaps)) as out:
            body = b"".join([chunk async for chunk in out])
        outcome = (
            f"{totals.sequences} sequences, {totals.missing} missing, "
            f"{totals.cancelled} cancelled, {totals.gaps_open} gaps open, "
            f"{totals.gaps_missing} gaps missing"
        )
    except ElasticsearchUnavailable:
        outcome = "unavailable"
        raise ApiError(
            503,
            "primary_unavailable",
            "the index cannot answer now; the report needs the primary (try again)",
        ) from None
    finally:
        audit.record(principal, "report.missing", seller, outcome, request.remote)
    result: dict[str, Any] = orjson.loads(body)
    return result


async def auditor(request: web.Request) -> web.StreamResponse:
    given = _given(request)
    context: dict[str, Any] = {
        "given": given,
        "report": None,
        "error": None,
        "strips": [],
        "width": WIDTH,
    }
    if given:
        try:
            report = await _report(request, given)
            context["report"] = report
            context["strips"] = [(s, series_strip(s)) for s in report["sequences"]]
        except ApiError as exc:
            if exc.status == 429:
                raise
            context["error"] = exc
    return await page(
        request,
        "auditor.html",
        context,
        status=context["error"].status if context["error"] else 200,
    )


async def export(request: web.Request) -> web.StreamResponse:
    """The API's CSV for the page's query (its own parameters checked as the API checks)."""
    return await report_views.missing_report(request)
