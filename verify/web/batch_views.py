"""Batches and ledgers from a file: upload, then a table of results with counts per status,
filters and downloads. A batch is read and answered as `POST /api/v1/verify/batch` reads and
answers it (CSV or JSON rows, `answer_rows` through `verify_query`); a ledger as
`POST /api/v1/reports/ledger` (CSV or XLSX, `BudgetedLines` and the report's JSON). Results
stay in this process for an hour (`verify.web.runs`). A batch uploaded with its "receipt"
box ticked is answered as `?receipt=true` answers it: each row with its signed receipt, which
the results offer as a PDF (`verify.web.receipt_views`); each receipt counts in the key's
receipts of the hour, so it is asked for, not the default."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDict

from indexer.ledger_file import LedgerFileError
from verify.access.middleware import PRINCIPAL
from verify.http.errors import ApiError
from verify.keys import ACCESS, SETTINGS
from verify.lookup import batch
from verify.lookup.verification import verify_query
from verify.receipts.state import RECEIPTS
from verify.reports import ledger
from verify.reports import views as report_views
from verify.reports.ledger_check import LedgerTotals
from verify.reports.query import require_scope
from verify.web.downloads import download
from verify.web.forms import FORM, Upload
from verify.web.render import page
from verify.web.runs import Run, row_status
from verify.web.state import WEB

#: Rows a results page shows at once (the downloads have them all).
PAGE_ROWS = 500
_BATCH_TYPES = {
    "text/csv": "text/csv",
    "application/json": "application/json",
    "application/vnd.ms-excel": "text/csv",
}


def _file(request: web.Request, name: str) -> Upload:
    upload = request[FORM].files.get(name)
    if upload is None or not upload.data:
        raise ApiError(400, f"missing_{name}", "choose a file to upload")
    return upload


def _batch_type(upload: Upload) -> str:
    if upload.content_type in _BATCH_TYPES:
        return _BATCH_TYPES[upload.content_type]
    return "application/json" if upload.data.lstrip()[:1] in (b"[", b"{") else "text/csv"


async def batch_page(request: web.Request) -> web.StreamResponse:
    if request.method == "GET":
        return await page(request, "batch.html", {"error": None})
    try:
        upload = _file(request, "file")
        rows = await asyncio.to_thread(batch.parse_rows, upload.data, _batch_type(upload))
    except ApiError as exc:
        if exc.status == 429:
            raise
        return await page(request, "batch.html", {"error": exc}, status=exc.status)
    # each row with its receipt when asked and one can be signed, as `?receipt=true` does
    receipt = request[FORM].get("receipt") == "true" and request.app[RECEIPTS].ready
    results = [
        r
        async for r in batch.answer_rows(
            rows,
            request.app[SETTINGS].rules,
            lambda query: verify_query(request, query, receipt=receipt),
        )
    ]
    run = Run(
        "batch",
        request[PRINCIPAL].key_id,
        results,
        [batch.csv_row(r) for r in results],
        batch.CSV_COLUMNS,
        "batch",
    )
    raise web.HTTPSeeOther(f"/web/batch/result?id={request.app[WEB].runs.add(run)}")


def _run(request: web.Request, kind: str) -> Run:
    run = request.app[WEB].runs.get(request.query.get("id", ""), request[PRINCIPAL].key_id, kind)
    if run is None:
        raise ApiError(
            404,
            "run_not_found",
            "these results are gone (they are kept for an "
            "hour, by the process that made them); upload the file again",
        )
    return run


def _shown(run: Run, status: str | None) -> tuple[list[dict[str, Any]], int]:
    rows = [r for r in run.rows if status is None or row_status(r) == status]
    return rows[:PAGE_ROWS], len(rows)


async def batch_result(request: web.Request) -> web.StreamResponse:
    return await _result(request, "batch")


async def ledger_result(request: web.Request) -> web.StreamResponse:
    return await _result(request, "ledger")


async def _result(request: web.Request, kind: str) -> web.StreamResponse:
    run = _run(request, kind)
    status = request.query.get("status") or None
    rows, total = _shown(run, status)
    return await page(
        request,
        f"{kind}_result.html",
        {
            "run": run,
            "run_id": request.query["id"],
            "rows": rows,
            "total": total,
            "counts": sorted(run.counts().items()),
            "status": status,
            "limit": PAGE_ROWS,
        },
    )


async def batch_download(request: web.Request) -> web.StreamResponse:
    return _download(request, "batch")


async def ledger_download(request: web.Request) -> web.StreamResponse:
    return _download(request, "ledger")


def _download(request: web.Request, kind: str) -> web.Response:
    run = _run(request, kind)
    return download(
        f"{run.title}-results", request.query.get("format", "csv"), run.columns, run.flat
    )


async def ledger_page(request: web.Request) -> web.StreamResponse:
    if request.method == "GET":
        return await page(request, "ledger.html", {"error": None, "given": {}})
    form = request[FORM]
    given = {k: form.get(k) for k in ("buyer_tax_id", "from", "to") if form.get(k)}
    try:
        return await _ledger(request, given)
    except ApiError as exc:
        if exc.status == 429:
            raise
        return await page(request, "ledger.html", {"error": exc, "given": given}, status=exc.status)


async def _ledger(request: web.Request, given: dict[str, str]) -> web.StreamResponse:
    """What `ledger_report` does, with the report in JSON kept as a run."""
    report = ledger.read_ledger_query(MultiDict(given))
    principal = request[PRINCIPAL]
    buyer = report.scope.buyer_tax_id
    require_scope(principal, "buyer_tax_id", buyer)
    upload = _file(request, "ledger")
    try:
        table, lines = await asyncio.to_thread(
            ledger.read_lines, upload.data, buyer, request.app[SETTINGS].rules
        )
    except LedgerFileError as exc:
        raise ledger.file_error(exc) from None
    totals = LedgerTotals()
    chunks: list[bytes] = []
    outcome = "aborted"
    try:
        async with aclosing(
            ledger.render(report, table, lines, report_views.BudgetedLines(request), totals)
        ) as rendered:
            chunks = [chunk async for chunk in rendered]
        outcome = totals.summary()
    finally:
        request.app[ACCESS].audit.record(principal, "report.ledger", buyer, outcome, request.remote)
    body = orjson.loads(b"".join(chunks))
    lines_out = body["lines"]
    unlisted = body["not_in_ledger"]
    flat = [ledger.line_csv_row(r) for r in lines_out] + [
        ledger.unlisted_csv_row(e) for e in unlisted
    ]
    run = Run(
        "ledger",
        principal.key_id,
        lines_out,
        flat,
        ledger.CSV_COLUMNS,
        f"ledger-{buyer}",
        {
            "not_in_ledger": unlisted,
            "totals": body["totals"],
            "scope": body["scope"],
            "checked": body["not_in_ledger_checked"],
        },
    )
    raise web.HTTPSeeOther(f"/web/ledger/result?id={request.app[WEB].runs.add(run)}")
