"""`POST /api/v1/verify/file` (docs/file-check.md): check an invoice file a seller sent.

The file is read by the intake's own parsers (`indexer.vn_xml.parse_invoice_file` for XML:
one `HDon`, or a `TDiep` package of one invoice; `indexer.package.package_from_json` for
JSON: one invoice, or a package of one) and validated by `indexer.validate.validate_invoice`,
so it means here what it would mean at intake. Its seller signature is checked against the
trust anchors exactly as intake checks it (`indexer.submission.signature_violations`).
Then the invoice is looked up through the normal lookup path (`check_query`: budgets,
primary or replica, gaps, outages, the second factor, seller status, the window, tenancy,
audit), with every field the lookup can match taken from the file, and the fields a lookup
does not match (names, currency, kind, original, authority code, type) and the goods lines
(from the stored original) are compared with the record too. Each difference is a
`mismatch` naming its field; a value the caller may not see is given as `recorded: null`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fallback.lookup.query import LookupQuery, MatchFields
from indexer import vn_xml
from indexer.model import Invoice
from indexer.package import Package, PackageError, package_from_json
from indexer.rules import RuleConfig, Severity, Violation
from indexer.signature import TrustAnchors, is_cash_register_series
from indexer.store.protocol import StoreUnavailableError
from indexer.submission import BodyFormat, Submission, signature_violations
from indexer.validate import validate_invoice
from verify.access.middleware import PRINCIPAL
from verify.access.service import is_party
from verify.http.body import read_body, read_form_field
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import ORIGINALS, RESILIENCE, SETTINGS, TRUST_ANCHORS
from verify.lookup.verification import Checked, check_query

Line = dict[str, str | None]
#: The multipart field that carries the file (a raw XML or JSON body works as well).
FIELD = "file"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Received:
    """The file as read: its invoice, what reading and validating it found, its seller
    signature's verdict and its goods lines (None for JSON, which carries none)."""

    format: BodyFormat
    invoice: Invoice
    violations: list[Violation]
    signature: dict[str, Any]
    lines: list[Line] | None


def _refused(exc: PackageError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.details)


def _json_package(body: bytes, max_items: int) -> Package:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, too-long integers
        raise ApiError(400, "malformed_json", "the file is not valid JSON") from None
    if isinstance(data, dict) and "invoices" not in data:  # one invoice, not a package
        data = {"package_id": "file", "sender": "file", "declared_count": 1, "invoices": [data]}
    return package_from_json(data, max_items=max_items)


def _signature(submission: Submission, invoice: Invoice, anchors: TrustAnchors,
               cfg: RuleConfig, now: datetime) -> dict[str, Any]:
    """`status`: `not_checked` (no trust anchors configured, or a cash-register invoice
    whose package signature is not in the file), `not_applicable` (Chinese invoices carry
    no XML signature), `valid`, `unsigned` (JSON, or an HDon without DSCKS/NBan/Signature)
    or `invalid`; with the rules' `violations`."""
    if invoice.scheme != "vn":
        return {"status": "not_applicable", "violations": []}
    if not anchors.enabled:
        return {"status": "not_checked", "reason": "no_trust_anchors", "violations": []}
    found = [v for v in signature_violations(submission, anchors, cfg, now).get(0, [])
             if v.severity is not Severity.OFF]
    codes = {v.code for v in found}
    series = getattr(invoice.key, "series", None)
    if not found and submission.cash_register_package is None \
            and is_cash_register_series(series):
        return {"status": "not_checked", "reason": "package_signature_not_in_file",
                "violations": []}
    if not found:
        status = "valid"
    elif codes & {"vn.signature.json_unsigned", "vn.signature.missing"}:
        status = "unsigned"
    else:
        status = "invalid"
    return {"status": status, "violations": [v.as_dict() for v in found]}


def read_file(body: bytes, cfg: RuleConfig, anchors: TrustAnchors, *, max_items: int,
              now: datetime) -> Received:
    """The invoice of a file, or an `ApiError` (4xx) saying why there is none. CPU-bound
    (XML parsing, the signature): callers on the event loop run it in a thread."""
    start = body[len(_BOM):] if body.startswith(_BOM) else body
    first = start.lstrip()[:1]
    originals: dict[int, bytes] = {}
    cash_register: bytes | None = None
    try:
        if first == b"<":
            fmt = BodyFormat.XML
            parsed = vn_xml.parse_invoice_file(body, max_items=max_items)
            package, originals = parsed.package, parsed.originals
            cash_register = parsed.cash_register_package
        elif first in (b"{", b"["):
            fmt = BodyFormat.JSON
            package = _json_package(body, max_items)
        else:
            raise ApiError(415, "unsupported_file", "the file must be invoice XML (an HDon or "
                           "a TDiep package) or JSON (an invoice or a package)")
    except PackageError as exc:
        raise _refused(exc) from None
    if len(package.invoices) != 1 or package.notices:
        raise ApiError(422, "file_not_one_invoice", "the file must hold exactly one invoice",
                       {"invoices": len(package.invoices), "notices": len(package.notices)})
    invoice, violations = validate_invoice(package.invoices[0], cfg, package_id="file", now=now)
    for found in package.findings.get(0, ()):
        violation = cfg.violation(found.rule, found.field, found.detail)
        if violation.severity is not Severity.OFF:
            violations.append(violation)
    if invoice is None:
        raise ApiError(422, "invalid_invoice", "the file's invoice is not valid",
                       {"violations": [v.as_dict() for v in violations]})
    submission = Submission(package, body, fmt, originals, cash_register)
    signature = _signature(submission, invoice, anchors, cfg, now)
    lines = vn_xml.lines_of_original(originals[0]) if 0 in originals else None
    return Received(fmt, invoice, violations, signature, lines)


def file_query(invoice: Invoice) -> LookupQuery:
    """The lookup of the file's invoice by its key, matching every field a lookup matches
    (which is also every second factor the Chinese types ask for)."""
    amounts = invoice.amounts
    match = MatchFields(amounts.total, amounts.before_tax, invoice.issued_on,
                        invoice.check_code, invoice.buyer_tax_id, amounts.tax)
    return LookupQuery(invoice.scheme, invoice.key, None, match)


def _doc_id(invoice: Invoice) -> str | None:
    return invoice.original.doc_id if invoice.original else None


#: Fields a lookup does not match, compared with the record: name -> its value.
_OTHER_FIELDS: dict[str, Any] = {
    "seller_tax_id": lambda i: i.seller_tax_id,
    "seller_name": lambda i: i.seller_name,
    "buyer_name": lambda i: i.buyer_name,
    "currency": lambda i: i.currency,
    "kind": lambda i: i.kind.value,
    "original": _doc_id,
    "authority_code": lambda i: i.authority_code,
    "type_code": lambda i: i.type_code,
}
#: Fields shown as null (recorded) to whoever may not see the invoice's parties.
_PARTY_FIELDS = frozenset({"seller_tax_id", "seller_name", "buyer_name"})


def field_mismatches(given: Invoice, recorded: Invoice) -> list[dict[str, str | None]]:
    out = []
    for name, value in _OTHER_FIELDS.items():
        mine, theirs = value(given), value(recorded)
        if mine != theirs:
            out.append({"field": name, "given": mine, "recorded": theirs})
    if given.issued_at != recorded.issued_at and given.issued_on == recorded.issued_on:
        out.append({"field": "issued_at", "given": given.issued_at.isoformat(),
                    "recorded": recorded.issued_at.isoformat()})
    return out


def line_mismatches(given: list[Line], recorded: list[Line]) -> list[dict[str, str | None]]:
    """Line by line, in document order: each field that differs (`lines[2].amount`, lines
    counted from 1), and the number of lines when it differs."""
    out: list[dict[str, str | None]] = []
    if len(given) != len(recorded):
        out.append({"field": "lines", "given": f"{len(given)} lines",
                    "recorded": f"{len(recorded)} lines"})
    for n, (mine, theirs) in enumerate(zip(given, recorded, strict=False), start=1):
        for name, _ in vn_xml.LINE_FIELDS:
            if mine.get(name) != theirs.get(name):
                out.append({"field": f"lines[{n}].{name}", "given": mine.get(name),
                            "recorded": theirs.get(name)})
    return out


async def stored_lines(request: web.Request, invoice: Invoice) -> tuple[list[Line] | None, str]:
    """The lines of the invoice's stored original, or None and why not: `original_not_kept`
    (it arrived as JSON) or `original_unavailable` (the store did not answer in time)."""
    try:
        async with asyncio.timeout(request.app[RESILIENCE].primary_timeout):
            body = await request.app[ORIGINALS].get(invoice.doc_id, invoice.package_id)
    except (StoreUnavailableError, TimeoutError):
        return None, "original_unavailable"
    if body is None:
        return None, "original_not_kept"
    try:
        return vn_xml.lines_of_original(body), "compared"
    except PackageError:
        return None, "original_unreadable"


async def _compare(request: web.Request, received: Received,
                   checked: Checked) -> dict[str, Any]:
    answer, record = checked.answer, checked.invoice
    lines: dict[str, Any] = {"compared": False, "reason": "invoice_not_found",
                             "count": None if received.lines is None else len(received.lines)}
    if record is None:
        return {**answer, "lines": lines}
    extra = field_mismatches(received.invoice, record)
    if received.lines is None:
        lines["reason"] = "file_has_no_lines"
    else:
        recorded, why = await stored_lines(request, record)
        lines["reason"] = None if recorded is not None else why
        if recorded is not None:
            lines["compared"] = True
            extra += line_mismatches(received.lines, recorded)
    principal = request[PRINCIPAL]
    party = is_party(principal, record.seller_tax_id, record.buyer_tax_id)
    withheld = "parties" in answer.get("withheld", ())
    redacted = answer.get("invoice", {}).get("redacted", ())
    for m in extra:
        name = str(m["field"])
        hidden = (
            (name.startswith("lines") and not party)
            or (name in _PARTY_FIELDS and withheld)
            or name in redacted
        )
        if hidden:
            m["recorded"] = None
    status = answer["status"]
    if status == "valid" and extra:
        status = "mismatch"
    return {**answer, "status": status, "mismatches": [*answer["mismatches"], *extra],
            "lines": lines}


async def _file_body(request: web.Request, limit: int) -> bytes:
    if request.content_type == "multipart/form-data":
        return (await read_form_field(request, FIELD, limit)).data
    return await read_body(request, limit)


async def verify_file(request: web.Request) -> web.Response:
    """The file's invoice checked against the index: the lookup answer, with every field
    that differs among `mismatches`, plus `file` (its format and the validation findings),
    `signature` and `lines` (whether the goods lines could be compared)."""
    settings = request.app[SETTINGS]
    body = await _file_body(request, settings.max_package_bytes)
    received = await asyncio.to_thread(
        read_file, body, settings.rules, request.app[TRUST_ANCHORS],
        max_items=settings.max_package_items, now=datetime.now(UTC))
    checked = await check_query(request, file_query(received.invoice))
    answer = await _compare(request, received, checked)
    answer["file"] = {
        "format": received.format.value,
        "id": received.invoice.doc_id,
        "violations": [v.as_dict() for v in received.violations],
    }
    answer["signature"] = received.signature
    return json_response(answer)
