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
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDict

from fallback.lookup.answer import build_answer
from fallback.lookup.fetch import fetch_invoice
from fallback.lookup.query import LookupQuery
from indexer.rules import RuleConfig
from indexer.store import InvoiceStore
from verify.http.body import read_body
from verify.http.errors import ApiError
from verify.keys import SETTINGS
from verify.lookup.facts import AnswerFacts
from verify.lookup.query import parse_lookup
from verify.lookup.verification import verify_query
from verify.receipts.flag import receipt_only
from verify.receipts.views import require_receipts
from verify.watches.flag import split_watch
from verify.watches.views import watch_answer

MAX_ROWS = 100_000
MAX_BODY = 32 * 1024 * 1024
#: A CSV line longer than this is refused before the csv module splits it (a lookup row is
#: under 300 bytes; a 32 MiB line of commas would otherwise become 16 million cells).
MAX_LINE = 8 * 1024
#: Blank lines a CSV batch may hold besides its rows and header.
MAX_BLANK = 1000
#: Parameters a row may name: a JSON batch with more separators than rows of this many
#: values is refused before it is parsed, since `json.loads` holds every value at once.
MAX_ROW_VALUES = 16
#: Seconds the service spends reading one batch's rows (in a worker thread, checked as rows
#: are counted) before it refuses the batch.
PARSE_SECONDS = 20.0
#: Rows answered between two yields to the event loop, so a large batch never holds it long.
YIELD_EVERY = 200

Row = dict[str, str]
Verifier = Callable[[LookupQuery], Awaitable[dict[str, Any]]]
log = logging.getLogger("verify.batch")


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("values must be text or numbers")
    return str(value)


def _too_many(rows: int | None = None) -> ApiError:
    details: dict[str, Any] = {"limit": MAX_ROWS}
    if rows is not None:
        details["rows"] = rows
    return ApiError(413, "batch_too_large", f"a batch holds at most {MAX_ROWS} rows", details)


ACCEPTED = ("application/json", "text/csv")


def _unsupported() -> ApiError:
    return ApiError(415, "unsupported_media_type", "send application/json or text/csv",
                    {"accepted": list(ACCEPTED)})


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_batch", message)


class _Budget:
    """Rows counted as they are read, against the row limit and the parse deadline."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.rows = 0

    def count(self) -> None:
        self.rows += 1
        if self.rows > MAX_ROWS:
            raise _too_many()
        if self.rows % 1000 == 0 and time.monotonic() > self.deadline:
            raise ApiError(413, "batch_too_large", f"the batch could not be read within "
                           f"{self.seconds:g} s", {"limit_s": self.seconds})


def _lines(body: bytes) -> Iterator[str]:
    """The CSV's lines, decoded as they are read, each within `MAX_LINE`."""
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8-sig", newline="")
    try:
        for line in iter(lambda: text.readline(MAX_LINE + 1), ""):
            if len(line) > MAX_LINE:
                raise _invalid(f"a CSV line is longer than {MAX_LINE} characters")
            yield line
    except UnicodeDecodeError:
        raise _invalid("the batch must be UTF-8") from None


class Shape:
    """What a batch's bytes say about its size, counted chunk by chunk as they arrive, so a
    batch past the limits is refused before the rest of it is read (`verify_batch`) or
    parsed (`parse_rows`).

    CSV: every line ends in \\n, \\r or both, so there are at least as many lines as the
    larger count; more than the rows allowed plus the header and `MAX_BLANK` is refused.
    JSON: every row is one object and every value after the first of a list or object
    follows a comma; these bound what `json.loads` would build."""

    def __init__(self, content_type: str) -> None:
        self.csv = content_type == "text/csv"
        self.newlines = self.returns = self.commas = self.opens = 0

    def add(self, chunk: bytes) -> None:
        if self.csv:
            self.newlines += chunk.count(b"\n")
            self.returns += chunk.count(b"\r")
            if max(self.newlines, self.returns) > MAX_ROWS + 1 + MAX_BLANK:
                raise _too_many()
            return
        self.commas += chunk.count(b",")
        self.opens += chunk.count(b"{") + chunk.count(b"[")
        if self.commas > MAX_ROWS * MAX_ROW_VALUES or self.opens > MAX_ROWS + 2:
            raise _too_many()


def _csv_rows(body: bytes, budget: _Budget) -> list[Row]:
    reader = csv.DictReader(_lines(body))
    try:
        if not reader.fieldnames:
            raise _invalid("the CSV needs a header row of parameter names")
        if len(reader.fieldnames) > MAX_ROW_VALUES:
            raise _invalid(f"a batch row has at most {MAX_ROW_VALUES} columns")
        rows: list[Row] = []
        for row in reader:
            budget.count()
            rows.append({k: v for k, v in row.items() if k and v not in (None, "")})
    except csv.Error as exc:
        raise _invalid(f"the CSV cannot be read: {exc}") from None
    return rows


def _json_rows(body: bytes, budget: _Budget) -> list[Row]:
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise _invalid("the batch must be UTF-8") from None
    except (ValueError, RecursionError):
        raise _invalid("the batch is not valid JSON") from None
    if isinstance(data, dict):
        data = data.get("lookups")
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise _invalid('send a JSON list of lookup objects, or {"lookups": [...]}')
    if len(data) > MAX_ROWS:
        raise _too_many(len(data))
    rows: list[Row] = []
    try:
        for r in data:
            budget.count()
            rows.append({str(k): _cell(v) for k, v in r.items() if v is not None})
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    return rows


def parse_rows(body: bytes, content_type: str, *,
               seconds: float = PARSE_SECONDS) -> list[Row]:
    """The batch's rows, or ApiError 400/413/415 for a batch that cannot be read at all.
    Rows are counted as they are read: a batch past `MAX_ROWS` is refused at that row,
    never after all of it was held; so is one not read within `seconds`."""
    if content_type in ACCEPTED:  # the body as a whole, for callers that did not stream it
        Shape(content_type).add(body)
    budget = _Budget(seconds)
    if content_type == "text/csv":
        return _csv_rows(body, budget)
    if content_type == "application/json":
        return _json_rows(body, budget)
    raise _unsupported()


async def answer_rows(rows: list[Row], rules: RuleConfig,
                      verify: Verifier) -> AsyncIterator[dict[str, Any]]:
    """One result per row, in order: `{"row": n, ...answer}` or `{"row": n, "error": {...}}`.
    A row that fails in any way gets its error line; the rows after it are still answered
    (an unexpected failure is logged and answered `row_failed`)."""
    for n, row in enumerate(rows, start=1):
        try:
            answer = await verify(parse_lookup(MultiDict(row), rules))
            yield {"row": n, **answer}
        except ApiError as exc:
            yield {"row": n, "error": exc.body()["error"]}
        except Exception:
            log.exception("a batch row could not be answered", extra={"row": n})
            yield {"row": n, "error": {"code": "row_failed", "message": "this row could "
                                       "not be checked; the failure was logged",
                                       "details": {}}}
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)


def store_verifier(store: InvoiceStore, facts: AnswerFacts | None = None) -> Verifier:
    """Verification straight from a local store: no keys, budgets or redaction; the facts a
    lookup adds (`verify.lookup.facts`: by default the verification window, no registry)."""
    added = facts or AnswerFacts(None)

    async def verify(query: LookupQuery) -> dict[str, Any]:
        invoice = await fetch_invoice(store, query)
        return await added.one(build_answer(query, invoice), query, invoice)

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
    watch, rest = split_watch(request.query)  # each row's invoice watched (watches.md)
    receipt = receipt_only(rest)  # each row's answer with its receipt (receipts.md)
    if receipt:
        require_receipts(request)
    if request.content_type not in ACCEPTED:
        raise _unsupported()
    shape = Shape(request.content_type)
    body = await read_body(request, MAX_BODY, inspect=shape.add)
    rows = await asyncio.to_thread(parse_rows, body, request.content_type)
    del body
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "X-Batch-Rows": str(len(rows))})
    await response.prepare(request)
    chunk: list[bytes] = []
    async def verify(query: LookupQuery) -> dict[str, Any]:
        answer = await verify_query(request, query, receipt=receipt)
        if not watch:
            return answer
        return await watch_answer(request, answer, query.lookup_key, raise_refusal=False)

    async for result in answer_rows(rows, request.app[SETTINGS].rules, verify):
        chunk.append(orjson.dumps(result) + b"\n")
        if len(chunk) >= YIELD_EVERY:
            await response.write(b"".join(chunk))
            chunk.clear()
    if chunk:
        await response.write(b"".join(chunk))
    await response.write_eof()
    return response
