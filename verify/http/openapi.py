"""`/openapi.json`: the API described, operation by operation: parameters with their limits,
request bodies and response bodies per content type (JSON, NDJSON, CSV, Prometheus text, PNG,
XML), every status an operation answers, and the bearer scheme. A test keeps the paths equal
to the router's routes (tests/verify/access/test_route_table.py); schemathesis calls every
operation of it against a live service (tests/verify/test_schemathesis.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from verify.http import openapi_receipts as r
from verify.http import openapi_schemas as s
from verify.http import openapi_watches as w
from verify.http.params import MAX_VALUE_LENGTH
from verify.http.responses import json_response
from verify.lookup.query import MAX_PARAM_LENGTH

Op = dict[str, Any]
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_ERROR = s.ref("Error")
NDJSON = "application/x-ndjson"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Statuses every operation behind a key can answer, whatever it does.
_SECURED = {
    "401": "missing or invalid API key",
    "403": "this key's role or scope may not use this operation",
    "429": "rate limited (Retry-After says when to retry)",
}
#: Every operation: what the application refuses, or aiohttp before it (plain text).
_MALFORMED = "malformed request"
#: Statuses of reading a request body (verify/http/body.py).
_BODY = {
    "400": "malformed body (not JSON, not UTF-8, bad multipart framing)",
    "408": "the body did not arrive in time",
    "413": "body too large",
    "415": "unsupported content type",
}


_RETRY_AFTER = {
    "required": True,
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(description: str, content: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, **({"content": content} if content else {})}


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, dict[str, Any]],
    *,
    secured: bool = True,
    errors: dict[str, str] | None = None,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    retry_after: tuple[str, ...] = (),
) -> Op:
    """One operation: `ok` maps success statuses to responses; every error status answers
    the JSON error envelope."""
    failures = {
        "400": _MALFORMED,
        **(_SECURED if secured else {}),
        **(_BODY if body else {}),
        **(errors or {}),
    }
    op: Op = {
        "operationId": op_id,
        "summary": summary,
        "responses": {
            **ok,
            **{
                code: {"description": text, "content": _json(_ERROR)}
                for code, text in sorted(failures.items())
            },
        },
    }
    # aiohttp refuses a request line over 8,190 bytes (a long query once percent-encoded) or
    # malformed HTTP itself, before the application, as plain text.
    op["responses"]["400"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    op["security"] = _BEARER if secured else []
    for status in ("429", *retry_after):
        if status in op["responses"]:
            op["responses"][status]["headers"] = {"Retry-After": _RETRY_AFTER}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _q(
    name: str,
    description: str,
    schema: dict[str, Any] | None = None,
    *,
    required: bool = False,
    max_len: int = MAX_VALUE_LENGTH,
) -> dict[str, Any]:
    """A query parameter; text unless `schema` says otherwise."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": max_len},
    }


def _text(max_len: int, pattern: str | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_len, **extra}
    if pattern:
        schema["pattern"] = pattern
    return schema


def _path(name: str, description: str, max_len: int = 200) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": max_len},
    }


_LIMIT = _q(
    "limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
)
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TAX_ID = r"^([0-9]{10}(-[0-9]{3})?|[0-9A-Z]{15,20})$"
_SERIES = r"^[CK][0-9]{2}[A-Z]{3}$"
_CN_CODE = r"^([0-9]{10}|[0-9]{12})$"
_INSTANT = {
    "type": "string",
    "format": "date-time",
    "maxLength": 40,
    "description": "ISO 8601 with a UTC offset (Z or +07:00)",
}
_FORMAT = _q("format", "json (default) or csv", {"type": "string", "enum": ["json", "csv"]})
_PERIOD = [
    _q("year", "issue year (or from/to)", _text(4, r"^[0-9]{4}$")),
    _q("from", "first issue date, YYYY-MM-DD", _text(10, _DATE)),
    _q("to", "last issue date (inclusive), YYYY-MM-DD", _text(10, _DATE)),
]
_INVOICE_ID = _path(
    "id", "invoice id: vn:MST:template:series:number, cn:code:number or cn:<20-digit number>"
)


def _lp(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    return _q(name, description, _text(MAX_PARAM_LENGTH, pattern))


LOOKUP_PARAMS = [
    _lp("seller_tax_id", "vn: seller MST (with template, series and number)"),
    _lp("template", "vn: template digit 1-9", "^[1-9]$"),
    _lp("series", "vn: series symbol, e.g. C22TAA"),
    _lp(
        "number",
        "vn: invoice number 1-99999999; cn: 8 digits with code, or 20 alone",
        "^[0-9]{1,20}$",
    ),
    _lp(
        "authority_code",
        "vn: tax authority code (MCCQT, 34 hex characters) or a "
        "cash-register code; a key on its own",
    ),
    _lp("code", "cn: 10- or 12-digit invoice code", _CN_CODE),
    _lp("total_amount", "match: total including tax, a plain decimal"),
    _lp("amount", "match: amount before tax, a plain decimal"),
    _lp("tax_amount", "match: VAT amount, a plain decimal"),
    _lp("issued_on", "match: issue date YYYY-MM-DD", _DATE),
    _lp("check_code", "match (cn): check code, 20 digits or the last 6", "^([0-9]{6}|[0-9]{20})$"),
    _lp("buyer_tax_id", "match: buyer tax id"),
    _q(
        "callback_url",
        "http(s) URL kept with the gap of an unconfirmed answer, notified when the gap is resolved",
        _text(2048, format="uri"),
    ),
]

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic")
_IMAGE_BODY = {
    "multipart/form-data": {"schema": s.obj(["image"], image=s.BINARY)},
    **{t: {"schema": s.BINARY} for t in _IMAGE_TYPES},
}
_LEDGER_BODY = {
    "multipart/form-data": {"schema": s.obj(["ledger"], ledger=s.BINARY)},
    "text/csv": {"schema": {"type": "string"}},
    XLSX: {"schema": s.BINARY},
}
_REPORT_CONTENT = {"text/csv": {"schema": {"type": "string"}}}


def _report(schema: str) -> dict[str, Any]:
    return {**_json(s.ref(schema)), **_REPORT_CONTENT}


def _list(name: str, item: str) -> dict[str, Any]:
    return _json(s.obj([name], **{name: {"type": "array", "items": s.ref(item)}}))


def _page(name: str, item: str, cursor: dict[str, Any]) -> dict[str, Any]:
    """A page of `item`s and the cursor (`after`) of the next page, null on the last."""
    return _json(
        s.obj(
            [name, "next_after"],
            **{name: {"type": "array", "items": s.ref(item)}, "next_after": s.nullable(cursor)},
        )
    )


_JOURNAL_SEQ = {
    "name": "seq",
    "in": "path",
    "required": True,
    "description": "the entry's sequence number",
    "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999},
}

PATHS: dict[str, dict[str, Op]] = {
    "/api/v1/packages": {
        "post": _op(
            "packages.create",
            "Intake one package (JSON or Vietnamese TDiep XML); answers the acceptance notice",
            {
                "200": _ok("the acceptance notice", _json(s.ref("Notice"))),
                "202": _ok(
                    "durable in the intake journal, the primary cannot take it now: the "
                    "notice says queued",
                    _json(s.ref("Notice")),
                ),
            },
            errors={
                "409": "package id reused with other content",
                "422": "invalid envelope",
                "503": "neither the primary nor the journal can take it (Retry-After)",
            },
            body={
                **_json(s.ref("PackageRequest")),
                "application/xml": {"schema": {"type": "string"}},
            },
            retry_after=("503",),
        )
    },
    "/api/v1/invoices/lookup": {
        "get": _op(
            "invoices.lookup",
            "Verify an invoice by any key form",
            {"200": _ok("the verification answer", _json(s.ref("Answer")))},
            errors={
                "400": "bad query (details.parameter names it)",
                "503": "a receipt was asked for and cannot be signed now (Retry-After)",
                **w.ERRORS,
            },
            params=[*LOOKUP_PARAMS, r.RECEIPT_PARAM, w.WATCH_PARAM],
            retry_after=("503",),
        )
    },
    "/api/v1/invoices/{id}/original.xml": {
        "get": _op(
            "invoices.original",
            "The invoice's original XML (admins and the invoice's parties)",
            {
                "200": _ok(
                    "the XML as accepted", {"application/xml": {"schema": {"type": "string"}}}
                )
            },
            errors={
                "400": "not an invoice id",
                "404": "no such invoice, not a party (answered alike), or no original kept",
            },
            params=[_INVOICE_ID],
        )
    },
    "/api/v1/taxpayers/{id}": {
        "get": _op(
            "taxpayers.get",
            "A Vietnamese seller's registry status, today and on a day, with the warnings "
            "a lookup of its invoices gives",
            {"200": _ok("the taxpayer's statuses", _json(s.ref("Taxpayer")))},
            errors={"404": "the registry holds no taxpayer with this tax id"},
            params=[
                _path("id", "the taxpayer's tax id (MST)", max_len=64),
                _q(
                    "on",
                    "a day (YYYY-MM-DD), e.g. an invoice's issue date",
                    _text(10, _DATE),
                ),
            ],
        )
    },
    "/api/v1/verify/qr": {
        "post": _op(
            "verify.qr",
            "Decode every QR code in a photo (JPEG, PNG, WebP, HEIC; multipart field "
            "`image` or a raw image/* body) and verify each; outcome no_qr_found when none is "
            "readable",
            {"200": _ok("each code: payload, answer or its own error", _json(s.ref("QrPhoto")))},
            errors={
                "400": "not an image, truncated, no image field",
                "413": "too many bytes or pixels",
                "422": "the image cannot be decoded",
                "503": "decoding busy, or a receipt cannot be signed now (Retry-After)",
            },
            body=_IMAGE_BODY,
            params=[r.RECEIPT_PARAM],
            retry_after=("503",),
        )
    },
    "/api/v1/verify/qr-text": {
        "post": _op(
            "verify.qr_text",
            "Verify the text of a QR code a scanner app already decoded",
            {"200": _ok("payload, answer or error (no_invoice_qr, ...)", _json(s.ref("QrResult")))},
            errors={"422": "no payload string", **r.UNAVAILABLE},
            body=_json(
                {
                    **s.obj(["payload"], payload={"type": "string", "maxLength": 4096}),
                    "additionalProperties": False,
                }
            ),
            params=[r.RECEIPT_PARAM],
            retry_after=("503",),
        )
    },
    "/api/v1/invoices/{id}/qr.png": {
        "get": _op(
            "invoices.qr_png",
            "Our QR code (IVQR1 text) for an indexed invoice, as PNG",
            {"200": _ok("the PNG", {"image/png": {"schema": s.BINARY}})},
            errors={"400": "bad id or parameter", "404": "no such invoice"},
            params=[
                _INVOICE_ID,
                _q(
                    "size",
                    "image width in pixels",
                    {"type": "integer", "minimum": 128, "maximum": 2048, "default": 400},
                ),
                _q(
                    "ec",
                    "error correction",
                    {
                        "type": "string",
                        "enum": ["L", "M", "Q", "H", "l", "m", "q", "h"],
                        "default": "M",
                    },
                ),
            ],
        )
    },
    "/api/v1/verify/batch": {
        "post": _op(
            "verify.batch",
            "Verify up to 100,000 lookups (a JSON list of lookup objects, "
            '{"lookups": [...]}, or CSV with a header of parameter names); answers NDJSON, one '
            "line per row in input order",
            {"200": _ok("one JSON object per line", {NDJSON: {"schema": s.ref("BatchRow")}})},
            body={
                **_json(
                    {
                        "oneOf": [
                            {"type": "array", "maxItems": 100_000, "items": s.LOOKUP_ROW},
                            s.obj(
                                ["lookups"],
                                lookups={
                                    "type": "array",
                                    "maxItems": 100_000,
                                    "items": s.LOOKUP_ROW,
                                },
                            ),
                        ]
                    }
                ),
                "text/csv": {"schema": {"type": "string"}},
            },
            errors=r.UNAVAILABLE,
            params=[r.RECEIPT_PARAM, w.WATCH_PARAM],
            retry_after=("503",),
        )
    },
    "/api/v1/verify/file": {
        "post": _op(
            "verify.file",
            "Check an invoice file a seller sent (XML: an HDon or a TDiep of one invoice; "
            "JSON: an invoice or a package of one): its seller signature, and every field and "
            "goods line against the index (docs/file-check.md)",
            {"200": _ok("the lookup answer with file, signature and lines",
                        _json(s.ref("FileCheck")))},
            errors={"422": "not one valid invoice (details.violations)"},
            body={
                "multipart/form-data": {"schema": s.obj(["file"], file=s.BINARY)},
                "application/xml": {"schema": {"type": "string"}},
                **_json(s.ANY_OBJECT),
            },
        )
    },
    "/api/v1/invoices/{id}/lines": {
        "get": _op(
            "invoices.lines",
            "The invoice's goods lines as received (admins and the invoice's parties)",
            {"200": _ok("the lines of the stored original", _json(s.ref("InvoiceLines")))},
            errors={
                "400": "not an invoice id",
                "404": "no such invoice, not a party (answered alike), or no original kept",
                "503": "the originals store did not answer in time",
            },
            params=[_INVOICE_ID],
        )
    },
    "/api/v1/reports/missing": {
        "get": _op(
            "reports.missing",
            "Missing-invoice report: per numbering sequence (vn template + "
            "series, cn invoice code) of one seller, first/last number seen, count issued, "
            "missing and cancelled number ranges, then the outage gaps with their windows",
            {"200": _ok("the report (JSON, or CSV with format=csv)", _report("MissingReport"))},
            errors={"400": "bad query", "503": "the primary index cannot answer"},
            params=[
                _q(
                    "seller_tax_id",
                    "the seller (audit keys: one of their scope)",
                    _text(20, _TAX_ID),
                    required=True,
                ),
                _q("template", "vn: template digit", _text(1, "^[1-9]$")),
                _q("series", "vn: series symbol", _text(6, _SERIES)),
                _q("code", "cn: invoice code", _text(12, _CN_CODE)),
                *_PERIOD,
                _FORMAT,
            ],
        )
    },
    "/api/v1/reports/ledger": {
        "post": _op(
            "reports.ledger",
            "Ledger reconciliation: each line of a buyer's purchase ledger "
            "(CSV or XLSX) checked against the index, and the buyer's invoices of the period the "
            "ledger lacks",
            {"200": _ok("the report (JSON, or CSV with format=csv)", _report("LedgerReport"))},
            errors={
                "400": "bad query, or a file that is not a readable ledger",
                "413": "more than 32 MiB or 100,000 lines",
                "503": "the primary index cannot answer",
            },
            params=[
                _q(
                    "buyer_tax_id",
                    "the buyer (audit keys: one of their scope)",
                    _text(20, _TAX_ID),
                    required=True,
                ),
                *_PERIOD,
                _FORMAT,
                r.RECEIPT_PARAM,
                w.WATCH_PARAM,
            ],
            body=_LEDGER_BODY,
        )
    },
    "/api/v1/admin/keys": {
        "post": _op(
            "admin.keys.create",
            "Create an API key (its token is shown once)",
            {
                "201": _ok(
                    "created", _json(s.obj(["token", "key"], token=s.STR, key=s.ref("ApiKey")))
                )
            },
            errors={"422": "invalid role, scopes or name"},
            body=_json(s.KEY_REQUEST),
        ),
        "get": _op(
            "admin.keys.list",
            "List API keys (never their secrets)",
            {"200": _ok("the keys", _list("keys", "ApiKey"))},
        ),
    },
    "/api/v1/admin/keys/{key_id}": {
        "delete": _op(
            "admin.keys.revoke",
            "Revoke an API key",
            {"200": _ok("revoked", _json(s.obj(["key"], key=s.ref("ApiKey"))))},
            errors={"404": "no such key"},
            params=[_path("key_id", "the key's id", 64)],
        )
    },
    "/api/v1/admin/audit": {
        "get": _op(
            "admin.audit",
            "Query the audit trail, newest first",
            {"200": _ok("entries", _list("entries", "AuditEntry"))},
            errors={"400": "bad query"},
            params=[
                _q("key_id", "only this key", _text(64)),
                _q("action", "verify, intake, keys.create, ...", _text(64)),
                _q("target", "invoice id, package id or key id", _text(200)),
                _q("since", "at or after", _INSTANT),
                _q("until", "before", _INSTANT),
                _LIMIT,
            ],
        )
    },
    "/api/v1/admin/registry": {
        "post": _op(
            "admin.registry.upload",
            "Import taxpayers and providers (the JSON file format, or CSV)",
            {
                "200": _ok(
                    "imported",
                    _json(s.obj(["imported", "totals"], imported=s.COUNTS, totals=s.COUNTS)),
                )
            },
            errors={"422": "invalid registry"},
            body={**_json(s.REGISTRY_REQUEST), "text/csv": {"schema": {"type": "string"}}},
        )
    },
    "/api/v1/gaps": {
        "get": _op(
            "gaps.list",
            "The gap ledger: lookups answered unconfirmed, oldest first, paged by "
            "id (admins: all; others: their own, audit keys also their sellers')",
            {"200": _ok("gaps and the id to page after", _page("gaps", "Gap", s.STR))},
            errors={"400": "bad query"},
            params=[
                _q("status", "open or resolved", {"type": "string", "enum": ["open", "resolved"]}),
                _q(
                    "reason",
                    "why it was unconfirmed",
                    {"type": "string", "enum": ["primary_down", "upstream_outage", "intake_lag"]},
                ),
                _q("since", "last seen at or after", _INSTANT),
                _q("after", "the last gap id of the previous page", _text(200)),
                _LIMIT,
            ],
        )
    },
    "/api/v1/gaps/{id}": {
        "get": _op(
            "gaps.get",
            "One gap",
            {"200": _ok("the gap", _json(s.ref("Gap")))},
            errors={"404": "no such gap (or not visible to this key)"},
            params=[_path("id", "the gap's id")],
        )
    },
    "/api/v1/outages": {
        "get": _op(
            "outages.list",
            "Outage windows, detected and declared, oldest first",
            {"200": _ok("outages and the id to page after", _page("outages", "Outage", s.INT))},
            errors={"400": "bad query"},
            params=[
                _q(
                    "system",
                    "which system",
                    {"type": "string", "enum": ["primary", "upstream", "replica"]},
                ),
                _q(
                    "kind",
                    "detected or declared",
                    {"type": "string", "enum": ["detected", "declared"]},
                ),
                _q("since", "windows not ended before", _INSTANT),
                _q(
                    "after",
                    "the last window id of the previous page",
                    {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
                ),
                _LIMIT,
            ],
        ),
        "post": _op(
            "outages.declare",
            "Declare a maintenance window (primary) or an authority outage (upstream)",
            {"201": _ok("declared", _json(s.ref("Outage")))},
            errors={"422": "invalid window"},
            body=_json(s.OUTAGE_REQUEST),
        ),
    },
    "/api/v1/reconcile": {
        "post": _op(
            "reconcile.start",
            "Run the reconciler now: drain the intake journal, re-check open "
            "gaps, deliver callbacks",
            {
                "202": _ok(
                    "started (or already running), with the status to poll",
                    _json(s.RECONCILE_STARTED),
                )
            },
            errors={"409": "the primary is in maintenance or its breaker is open"},
        )
    },
    "/api/v1/reconcile/status": {
        "get": _op(
            "reconcile.status",
            "Progress of the current or last reconciler run, journal entries and open gaps",
            {"200": _ok("status", _json(s.ref("ReconcileStatus")))},
        )
    },
    "/api/v1/journal": {
        "get": _op(
            "journal.list",
            "Intake journal entries in one state (quarantined by default), in "
            "journal order, without their bodies (docs/journal.md)",
            {
                "200": _ok(
                    "entries, counts per state and the sequence number to page after",
                    _json(
                        s.obj(
                            ["state", "counts", "entries", "next_after"],
                            state=s.STR,
                            counts={**s.ANY_OBJECT, "additionalProperties": s.INT},
                            entries={"type": "array", "items": s.ANY_OBJECT},
                            next_after=s.nullable(s.INT),
                        )
                    ),
                )
            },
            errors={"400": "bad query"},
            params=[
                _q(
                    "state",
                    "entry state",
                    {
                        "type": "string",
                        "enum": ["pending", "applied", "quarantined"],
                        "default": "quarantined",
                    },
                ),
                _q(
                    "after",
                    "the last sequence number of the previous page",
                    {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
                ),
                _LIMIT,
            ],
        )
    },
    "/api/v1/journal/{seq}/retry": {
        "post": _op(
            "journal.retry",
            "Put a quarantined entry back in the queue (attempts reset)",
            {"200": _ok("pending again", _json(s.obj(["seq", "state"], seq=s.INT, state=s.STR)))},
            errors={"400": "bad sequence number", "404": "no quarantined entry has it"},
            params=[_JOURNAL_SEQ],
        )
    },
    "/api/v1/journal/{seq}": {
        "delete": _op(
            "journal.drop",
            "Delete a quarantined entry (its package is given up)",
            {"200": _ok("dropped", _json(s.obj(["seq", "dropped"], seq=s.INT, dropped=s.BOOL)))},
            errors={"400": "bad sequence number", "404": "no quarantined entry has it"},
            params=[_JOURNAL_SEQ],
        )
    },
    "/.well-known/jwks.json": {
        "get": _op(
            "receipts.jwks",
            "The public keys receipts are signed with, current and retired (a "
            "JWK Set; no key needed)",
            {"200": _ok("the JWK Set", _json(s.ref("Jwks")))},
            secured=False,
            errors=r.UNAVAILABLE,
            retry_after=("503",),
        )
    },
    "/api/v1/receipts/verify": {
        "post": _op(
            "receipts.verify",
            "Check a receipt: signed by this service and unchanged",
            {
                "200": _ok(
                    "valid with its facts, or not valid with why", _json(s.ref("ReceiptCheck"))
                )
            },
            errors={**r.BODY_ERRORS, **r.UNAVAILABLE},
            body=r.RECEIPT_BODY,
            retry_after=("503",),
        )
    },
    "/api/v1/receipts/pdf": {
        "post": _op(
            "receipts.pdf",
            "A receipt as a one-page PDF: its facts and its own QR code",
            {"200": _ok("the PDF", {"application/pdf": {"schema": s.BINARY}})},
            errors={
                **r.BODY_ERRORS,
                "422": "no receipt string, or a receipt that does not verify (details.reason)",
                **r.UNAVAILABLE,
            },
            body=r.RECEIPT_BODY,
            retry_after=("503",),
        )
    },
    "/api/v1/watches": {
        "post": _op(
            "watches.create",
            "Watch invoices for a period: told when one is cancelled, replaced or adjusted, "
            "or its gap resolved (an existing watch of a key is renewed)",
            {"201": _ok("the watches, one per key in order", _json(s.ref("Watches")))},
            errors={"422": "a key, days or callback_url that cannot be used", **w.ERRORS},
            body=_json(w.WATCH_REQUEST),
        ),
        "get": _op(
            "watches.list",
            "This key's watches in force",
            {"200": _ok("the watches", _json(s.ref("Watches")))},
        ),
    },
    "/api/v1/watches/events": {
        "get": _op(
            "watches.events",
            "This key's watch events, oldest first, after a cursor",
            {"200": _ok("a page of events", _json(s.ref("WatchEvents")))},
            errors={"400": "bad query (details.parameter names it)",
                    "422": "a key that cannot be used"},
            params=[
                _q("key", "only the events of this watched key", max_len=200),
                _q("after", "the `next` cursor of the previous page",
                   {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0}),
                _LIMIT,
            ],
        )
    },
    "/api/v1/watches/{id}": {
        "delete": _op(
            "watches.delete",
            "Stop watching (this key's own watch)",
            {"200": _ok("deleted", _json(s.obj(["id", "deleted"], id=s.STR, deleted=s.BOOL)))},
            errors={"404": "this key has no watch with this id"},
            params=[_path("id", "the watch's id")],
        )
    },
    "/metrics": {
        "get": _op(
            "metrics",
            "Prometheus metrics",
            {
                "200": _ok(
                    "Prometheus text exposition format 0.0.4",
                    {"text/plain": {"schema": {"type": "string"}}},
                )
            },
            secured=False,
        )
    },
    "/healthz": {
        "get": _op(
            "health",
            "Liveness",
            {
                "200": _ok(
                    "alive", _json(s.obj(["status"], status={"type": "string", "enum": ["ok"]}))
                )
            },
            secured=False,
        )
    },
    "/readyz": {
        "get": _op(
            "ready",
            "Readiness per dependency",
            {
                "200": _ok("ready", _json(s.ref("Ready"))),
                "503": _ok("not ready", _json(s.ref("Ready"))),
            },
            secured=False,
        )
    },
    "/openapi.json": {
        "get": _op(
            "openapi",
            "This document",
            {"200": _ok("the OpenAPI 3.0 document", _json(s.obj(["openapi", "paths"])))},
            secured=False,
        )
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "invoice-verify",
        "version": "1",
        "description": "Verify Vietnamese and Chinese e-invoices through outages. "
        'Errors are {"error": {"code", "message", "details"}}.',
    },
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {**s.SCHEMAS, **r.SCHEMAS, **w.SCHEMAS},
    },
}


async def serve(request: web.Request) -> web.Response:
    return json_response(SPEC)
