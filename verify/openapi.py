"""`/openapi.json`: the API described. A test keeps it equal to the router's routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from verify.responses import json_response

_ERROR = {"$ref": "#/components/schemas/Error"}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _op(op_id: str, summary: str, *, secured: bool = True, params: list[dict[str, Any]] | None
        = None, body: dict[str, Any] | None = None,
        responses: dict[str, str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "responses": {
        code: {"description": text, "content": {"application/json": {"schema": (
            _ERROR if int(code) >= 400 else {"type": "object"})}}}
        for code, text in (responses or {"200": "OK"}).items()}}
    if secured:
        op["security"] = _BEARER
        op["responses"] |= {
            "401": {"description": "missing or invalid API key",
                    "content": {"application/json": {"schema": _ERROR}}},
            "403": {"description": "role not allowed",
                    "content": {"application/json": {"schema": _ERROR}}},
            "429": {"description": "rate limited (Retry-After)",
                    "content": {"application/json": {"schema": _ERROR}}}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _q(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


LOOKUP_PARAMS = [
    _q("seller_tax_id", "vn: seller MST (with seller_tax_id, template, series, number)"),
    _q("template", "vn: template digit 1-9"),
    _q("series", "vn: series symbol, e.g. C22TAA"),
    _q("number", "vn: invoice number; cn: 8-digit number with code, or 20-digit alone"),
    _q("authority_code", "vn: tax authority code (MCCQT), a key on its own"),
    _q("code", "cn: 10- or 12-digit invoice code"),
    _q("total_amount", "match: total including tax"),
    _q("amount", "match: amount before tax"),
    _q("issued_on", "match: issue date YYYY-MM-DD"),
    _q("check_code", "match (cn): check code, 20 digits or the last 6"),
    _q("buyer_tax_id", "match: buyer tax id"),
    _q("callback_url", "http(s) URL kept with the gap of an unconfirmed answer, notified "
       "when the gap is resolved (GET lookups only)"),
]

_IMAGE = {"type": "string", "format": "binary"}
_IMAGE_BODY = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                       "properties": {"image": _IMAGE}}},
    **{t: {"schema": _IMAGE} for t in ("image/jpeg", "image/png", "image/webp", "image/heic")}}}
_LEDGER = {"type": "string", "format": "binary"}
_LEDGER_BODY = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["ledger"],
                                       "properties": {"ledger": _LEDGER}}},
    "text/csv": {"schema": _LEDGER},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": _LEDGER}}}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "invoice id: vn:MST:template:series:number, cn:code:number or "
                            "cn:<20-digit number>"}

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/packages": {"post": _op(
        "packages.create", "Intake one package; answers the acceptance notice",
        body={"type": "object", "required": ["package_id", "sender", "declared_count"]},
        responses={"200": "acceptance notice", "202": "queued in the intake journal (the "
                   "primary is unavailable); the notice says queued", "400": "malformed JSON",
                   "409": "id conflict", "413": "too large", "415": "not JSON",
                   "422": "invalid envelope", "503": "neither the primary nor the journal "
                   "can take it; Retry-After"})},
    "/api/v1/invoices/lookup": {"get": _op(
        "invoices.lookup", "Verify an invoice by any key form", params=LOOKUP_PARAMS,
        responses={"200": "verification answer", "400": "bad query"})},
    "/api/v1/invoices/{id}/original.xml": {"get": _op(
        "invoices.original", "The invoice's original XML (admins and the invoice's parties)",
        params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        responses={"200": "the XML", "403": "not a party", "404": "no such invoice or no "
                   "original kept"})},
    "/api/v1/verify/qr": {"post": _op(
        "verify.qr", "Decode every QR code in a photo (JPEG, PNG, WebP, HEIC; multipart field "
        "`image` or a raw image/* body) and verify each; outcome no_qr_found when none is "
        "readable", responses={
            "200": "codes: payload, verification answer or error (no_invoice_qr, ...)",
            "400": "not an image, truncated, no image field", "413": "too many bytes or "
            "pixels", "415": "not an image type", "503": "decoding busy (Retry-After)"})
        | {"requestBody": _IMAGE_BODY}},
    "/api/v1/verify/qr-text": {"post": _op(
        "verify.qr_text", "Verify the text of a QR code a scanner app already decoded",
        body={"type": "object", "required": ["payload"],
              "properties": {"payload": {"type": "string"}}},
        responses={"200": "payload, verification answer or error (no_invoice_qr, ...)",
                   "400": "malformed JSON", "415": "not JSON", "422": "no payload string"})},
    "/api/v1/invoices/{id}/qr.png": {"get": _op(
        "invoices.qr_png", "Our QR code (IVQR1 text) for an indexed invoice, as PNG",
        params=[_ID_PARAM, _q("size", "image width in pixels, 128-2048 (default 400)",
                              r"^\d+$"),
                _q("ec", "error correction L, M (default), Q or H", "^[LMQHlmqh]$")],
        responses={"200": "image/png", "400": "bad id or parameter",
                   "404": "no such invoice"})},
    "/api/v1/verify/batch": {"post": _op(
        "verify.batch", "Verify up to 100,000 lookups (JSON list or CSV); NDJSON in input order",
        body={"type": "array", "items": {"type": "object"}},
        responses={"200": "NDJSON, one answer or error per row", "400": "unreadable batch",
                   "413": "too many rows", "415": "not JSON or CSV"})},
    "/api/v1/reports/missing": {"get": _op(
        "reports.missing", "Missing-invoice report: per numbering sequence (vn template + "
        "series, cn invoice code) of one seller, first/last number seen, count issued, "
        "missing and cancelled number ranges, then the outage gaps (open or resolved "
        "missing) with their outage windows; streamed JSON or CSV",
        params=[_q("seller_tax_id", "required: the seller (audit keys: one of their scope)"),
                _q("template", "vn: template digit 1-9"), _q("series", "vn: series symbol"),
                _q("code", "cn: invoice code (10 or 12 digits)"),
                _q("year", "issue year (or from/to)", r"^\d{4}$"),
                _q("from", "first issue date, YYYY-MM-DD"),
                _q("to", "last issue date (inclusive), YYYY-MM-DD"),
                _q("format", "json (default) or csv", "^(json|csv)$")],
        responses={"200": "the report (application/json or text/csv)", "400": "bad query",
                   "503": "the primary index cannot answer"})},
    "/api/v1/reports/ledger": {"post": _op(
        "reports.ledger", "Ledger reconciliation: each line of a buyer's purchase ledger "
        "(CSV or XLSX) checked against the index (valid, mismatch with the fields, cancelled, "
        "replaced, adjusted, not_found, unconfirmed, or a per-line error), and the buyer's "
        "invoices of the period the ledger lacks; streamed JSON or CSV",
        params=[_q("buyer_tax_id", "required: the buyer (audit keys: one of their scope)"),
                _q("year", "the ledger's period: a year (or from and to)", r"^\d{4}$"),
                _q("from", "first issue date, YYYY-MM-DD"),
                _q("to", "last issue date (inclusive), YYYY-MM-DD"),
                _q("format", "json (default) or csv", "^(json|csv)$")],
        responses={"200": "the report (application/json or text/csv)",
                   "400": "bad query, or a file that is not a readable ledger",
                   "413": "more than 32 MiB or 100,000 lines",
                   "415": "not CSV, XLSX or multipart"})
        | {"requestBody": _LEDGER_BODY}},
    "/api/v1/admin/keys": {
        "post": _op("admin.keys.create", "Create an API key (token shown once)",
                    body={"type": "object", "required": ["role"], "properties": {
                        "role": {"enum": ["intake", "verify", "audit", "admin"]},
                        "scopes": {"type": "array", "items": {"type": "string"}},
                        "name": {"type": "string"}}},
                    responses={"201": "created", "400": "malformed JSON",
                               "415": "not JSON", "422": "invalid request"}),
        "get": _op("admin.keys.list", "List API keys (never their secrets)")},
    "/api/v1/admin/keys/{key_id}": {"delete": _op(
        "admin.keys.revoke", "Revoke an API key",
        params=[{"name": "key_id", "in": "path", "required": True,
                 "schema": {"type": "string"}}],
        responses={"200": "revoked", "404": "no such key"})},
    "/api/v1/admin/audit": {"get": _op(
        "admin.audit", "Query the audit trail, newest first",
        params=[_q("key_id", "only this key"), _q("action", "verify, intake, keys.create, ..."),
                _q("target", "invoice id, package id or key id"),
                _q("since", "ISO 8601 with offset"), _q("until", "ISO 8601 with offset"),
                _q("limit", "1-1000, default 100", r"^\d+$")],
        responses={"200": "entries", "400": "bad query"})},
    "/api/v1/admin/registry": {"post": _op(
        "admin.registry.upload", "Import taxpayers and providers (JSON file format, or CSV)",
        body={"type": "object", "properties": {"taxpayers": {"type": "array"},
                                               "providers": {"type": "array"}}},
        responses={"200": "imported", "413": "too large", "415": "not JSON or CSV",
                   "422": "invalid registry"})},
    "/api/v1/gaps": {"get": _op(
        "gaps.list", "The gap ledger: lookups answered unconfirmed, oldest first, paged by "
        "id (admins: all; others: their own, audit keys also their sellers')",
        params=[_q("status", "open or resolved", "^(open|resolved)$"),
                _q("reason", "primary_down, upstream_outage or intake_lag"),
                _q("since", "last seen at or after (ISO 8601 with offset)"),
                _q("after", "the last gap id of the previous page"),
                _q("limit", "1-1000, default 100", r"^\d+$")],
        responses={"200": "gaps and next_after", "400": "bad query"})},
    "/api/v1/gaps/{id}": {"get": _op(
        "gaps.get", "One gap",
        params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        responses={"200": "the gap", "404": "no such gap (or not visible to this key)"})},
    "/api/v1/outages": {
        "get": _op("outages.list", "Outage windows, detected and declared, oldest first",
                   params=[_q("system", "primary, upstream or replica"),
                           _q("kind", "detected or declared"),
                           _q("since", "windows not ended before (ISO 8601 with offset)"),
                           _q("after", "the last window id of the previous page", r"^\d+$"),
                           _q("limit", "1-1000, default 100", r"^\d+$")],
                   responses={"200": "outages and next_after", "400": "bad query"}),
        "post": _op("outages.declare", "Declare a maintenance window (primary) or an "
                    "authority outage (upstream)",
                    body={"type": "object", "required": ["system", "start", "end"],
                          "properties": {"system": {"enum": ["primary", "upstream"]},
                                         "start": {"type": "string", "format": "date-time"},
                                         "end": {"type": "string", "format": "date-time"},
                                         "reason": {"type": "string"}}},
                    responses={"201": "declared", "400": "malformed JSON", "415": "not JSON",
                               "422": "invalid window"})},
    "/api/v1/reconcile": {"post": _op(
        "reconcile.start", "Run the reconciler now: drain the intake journal, re-check open "
        "gaps, deliver callbacks",
        responses={"202": "started (or already running), with the status to poll",
                   "409": "the primary is in maintenance or its breaker is open"})},
    "/api/v1/reconcile/status": {"get": _op(
        "reconcile.status", "Progress of the current or last reconciler run, journal entries "
        "and open gaps", responses={"200": "status"})},
    "/metrics": {"get": _op("metrics", "Prometheus metrics (text format)", secured=False)},
    "/healthz": {"get": _op("health", "Liveness", secured=False)},
    "/readyz": {"get": _op("ready", "Readiness per dependency", secured=False,
                           responses={"200": "ready", "503": "not ready"})},
    "/openapi.json": {"get": _op("openapi", "This document", secured=False)},
}

PATHS["/api/v1/invoices/{id}/qr.png"]["get"]["responses"]["200"]["content"] = {
    "image/png": {"schema": _IMAGE}}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "invoice-verify", "version": "1",
             "description": "Verify Vietnamese and Chinese e-invoices through outages."},
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "object", "required": ["code", "message", "details"],
                      "properties": {"code": {"type": "string"},
                                     "message": {"type": "string"},
                                     "details": {"type": "object"}}}}}},
    },
}


async def serve(request: web.Request) -> web.Response:
    return json_response(SPEC)
