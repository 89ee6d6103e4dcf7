"""Batch verification: up to 100,000 lookups from a JSON list or a CSV upload, answered as
NDJSON in input order. A bad row gets its own error line; nothing aborts the batch.

Each row holds the lookup parameters of `GET /invoices/lookup` (CSV: one column per
parameter; JSON: one object per row, or `{"lookups": [...]}`). Every row goes through the
same verification core as a single lookup, so per-invoice limits, the miss budget, tenancy
and the audit trail apply row by row.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDict

from indexer.rules import RuleConfig
from indexer.store import InvoiceStore
from verify.answer import build_answer
from verify.body import read_body
from verify.errors import ApiError
from verify.keys import SETTINGS
from verify.lookup import LookupQuery, fetch_invoice, parse_lookup
from verify.verification import verify_query

MAX_ROWS = 100_000
MAX_BODY = 32 * 1024 * 1024
#: Rows answered between two yields to the event loop, so a large batch never holds it long.
YIELD_EVERY = 200

Row = dict[str, str]
Verifier = Callable[[LookupQuery], Awaitable[dict[str, Any]]]


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("values must be text or numbers")
    return str(value)


def parse_rows(body: bytes, content_type: str) -> list[Row]:
    """The batch's rows, or ApiError 400/413/415 for a batch that cannot be read at all."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_batch", "the batch must be UTF-8") from None
    if content_type == "text/csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ApiError(400, "invalid_batch", "the CSV needs a header row of parameter names")
        rows = [{k: v for k, v in row.items() if k and v not in (None, "")} for row in reader]
    elif content_type == "application/json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_batch", "the batch is not valid JSON") from None
        if isinstance(data, dict):
            data = data.get("lookups")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ApiError(400, "invalid_batch",
                           'send a JSON list of lookup objects, or {"lookups": [...]}')
        try:
            rows = [{str(k): _cell(v) for k, v in r.items() if v is not None} for r in data]
        except ValueError as exc:
            raise ApiError(400, "invalid_batch", str(exc)) from None
    else:
        raise ApiError(415, "unsupported_media_type", "send application/json or text/csv",
                       {"accepted": ["application/json", "text/csv"]})
    if len(rows) > MAX_ROWS:
        raise ApiError(413, "batch_too_large", f"a batch holds at most {MAX_ROWS} rows",
                       {"limit": MAX_ROWS, "rows": len(rows)})
    return rows


async def answer_rows(rows: list[Row], rules: RuleConfig,
                      verify: Verifier) -> AsyncIterator[dict[str, Any]]:
    """One result per row, in order: `{"row": n, ...answer}` or `{"row": n, "error": {...}}`."""
    for n, row in enumerate(rows, start=1):
        try:
            answer = await verify(parse_lookup(MultiDict(row), rules))
            yield {"row": n, **answer}
        except ApiError as exc:
            yield {"row": n, "error": exc.body()["error"]}
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)


def store_verifier(store: InvoiceStore) -> Verifier:
    """Verification straight from a local store (the CLI): no keys, budgets or redaction."""

    async def verify(query: LookupQuery) -> dict[str, Any]:
        return build_answer(query, await fetch_invoice(store, query))

    return verify


CSV_COLUMNS = ("row", "status", "scheme", "id", "total_amount", "mismatches", "related",
               "source", "degraded", "as_of", "error_code", "error_message")


def csv_row(result: dict[str, Any]) -> dict[str, Any]:
    """A flat CSV row of one batch result (mismatches and relations as `a; b` lists)."""
    if "error" in result:
        return {"row": result["row"], "error_code": result["error"]["code"],
                "error_message": result["error"]["message"]}
    invoice = result.get("invoice") or {}
    return {
        "row": result["row"], "status": result["status"], "scheme": result["scheme"],
        "id": invoice.get("id"), "total_amount": invoice.get("total_amount"),
        "mismatches": "; ".join(f"{m['field']}: given {m['given']}, recorded {m['recorded']}"
                                for m in result["mismatches"]),
        "related": "; ".join(f"{r['relation']} {r['id'] or r['notice_id']}"
                             for r in result["related"]),
        "source": result["source"], "degraded": result["degraded"], "as_of": result["as_of"],
    }


async def verify_batch(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, MAX_BODY)
    rows = parse_rows(body, request.content_type)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "X-Batch-Rows": str(len(rows))})
    await response.prepare(request)
    chunk: list[bytes] = []
    async for result in answer_rows(rows, request.app[SETTINGS].rules,
                                    lambda query: verify_query(request, query)):
        chunk.append(orjson.dumps(result) + b"\n")
        if len(chunk) >= YIELD_EVERY:
            await response.write(b"".join(chunk))
            chunk.clear()
    if chunk:
        await response.write(b"".join(chunk))
    await response.write_eof()
    return response
