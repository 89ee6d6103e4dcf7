"""What of a verification answer a caller may see.

The one redaction every exit applies where an answer leaves the service: lookups, batch rows,
QR photos and QR text (`verify.lookup.verification.verify_query`), ledger lines
(`verify.reports.ledger_check` with `redact_answer`), resolved gaps (`redact_gap`), checked
files (`verify.lookup.file_check`). Callbacks carry no answer, only the gap's status with the
window's reason and the seller's warnings (`fallback/callbacks.py`): no amounts or parties.

Every caller gets the answer shape. The buyer's identity (tax id, name) is shown only to
callers who are a party to the invoice: an admin, or a key scoped to the seller's or the
buyer's tax id. Anyone else sees it as null and listed under `invoice.redacted`; a
`buyer_tax_id` mismatch still tells them their value differs, without the recorded one.
"""

from __future__ import annotations

from typing import Any

from verify.access.roles import Principal

BUYER_FIELDS = ("buyer_tax_id", "buyer_name")

#: Routes open to non-admin keys that send verification answers (or what is built from
#: them) out of the service, each with its test in tests/verify/access/test_redaction_exits.py.
ANSWER_ROUTES = frozenset({"invoices.lookup", "verify.batch", "verify.qr", "verify.qr_text",
                           "verify.file", "reports.ledger", "gaps.list", "gaps.get"})
#: The other routes open to non-admin keys, and why they carry no answer to redact. A route
#: in neither set fails that test: a new exit has to say which it is.
NO_ANSWER_ROUTES = {
    "packages.create": "the sender's own acceptance notice",
    "invoices.qr_png": "a QR image of the invoice key, total and date (no parties)",
    "invoices.original": "parties only (404 for anyone else, as for an absent invoice)",
    "invoices.lines": "parties only (404 for anyone else, as for an absent invoice)",
    "taxpayers.get": "a seller's registry status, as the GDT publishes it (no invoice data)",
    "reports.missing": "numbering ranges of the caller's own seller tax ids",
    "outages.list": "outage windows: no invoice data",
    "reconcile.status": "counts only",
    "receipts.verify": "the receipt's own signed facts, which its holder can already read",
    "receipts.pdf": "the receipt's own signed facts, which its holder can already read",
    "watches.create": "the caller's own watches: keys it gave",
    "watches.list": "the caller's own watches: keys it gave",
    "watches.delete": "the caller's own watch",
    "watches.events": "the caller's own events: an invoice id and its new status, no parties",
}


def redact_answer(answer: dict[str, Any], principal: Principal) -> dict[str, Any]:
    invoice = answer.get("invoice")
    if not invoice:
        return answer
    if principal.sees_tax_id(invoice.get("seller_tax_id")) or principal.sees_tax_id(
            invoice.get("buyer_tax_id")):
        return answer
    invoice = {**invoice, "buyer_tax_id": None, "buyer_name": None,
               "redacted": list(BUYER_FIELDS)}
    mismatches = [{**m, "recorded": None} if m["field"] in BUYER_FIELDS else m
                  for m in answer["mismatches"]]
    return {**answer, "invoice": invoice, "mismatches": mismatches}


def redact_gap(gap: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """A gap as `Gap.as_dict` gives it, its final answer (once resolved) redacted for the
    caller like the lookup that recorded it."""
    answer = gap.get("answer")
    if not answer:
        return gap
    return {**gap, "answer": redact_answer(answer, principal)}
