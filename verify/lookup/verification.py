"""The verification core shared by every lookup endpoint: budgets, store, answer, tenancy,
audit. `GET /invoices/lookup` and the QR endpoints call the same function, so a code read
from a photo is verified, limited and recorded exactly like a typed-in key. With Redis rate
limits the read runs while the budget take is on its way; a refused caller still gets only
its 429, and nothing is recorded for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from fallback.lookup.query import LookupQuery
from fallback.lookup.resilience import Fetched
from fallback.lookup.second_factor import guard
from fallback.lookup.seller_status import with_seller_status
from fallback.lookup.window import outside_window
from indexer.model import SCHEME_TZ, Invoice
from verify.access.middleware import PRINCIPAL, key_due
from verify.access.roles import Principal, Role
from verify.access.service import Access, Admission, QueuedAdmission, is_party
from verify.access.tenancy import redact_answer
from verify.keys import ACCESS, REGISTRY, RESILIENCE, SETTINGS
from verify.receipts.views import with_receipt

log = logging.getLogger(__name__)


async def verify_query(
    request: web.Request,
    query: LookupQuery,
    *,
    callback_url: str | None = None,
    receipt: bool = False,
) -> dict[str, Any]:
    """The caller's answer for one query. Raises `ApiError` 429 when a budget is spent.
    Primary or replica, and what a miss means, is decided in `fallback.lookup.resilience`;
    `callback_url` is kept with the gap an unconfirmed answer records. `receipt`: the answer
    carries its signed receipt (`verify.receipts.views.with_receipt`), made from the answer
    as the caller gets it and the invoice record it was read from."""
    checked = await check_query(request, query, callback_url=callback_url)
    shown, invoice = checked.answer, checked.invoice
    return await with_receipt(request, shown, invoice, checked.target) if receipt else shown


@dataclass(frozen=True, slots=True)
class Checked:
    """One query verified: the answer as the caller may see it, the invoice record it was
    read from (None when nothing was found) and the name the audit trail gave it."""

    answer: dict[str, Any]
    invoice: Invoice | None
    target: str


async def check_query(
    request: web.Request, query: LookupQuery, *, callback_url: str | None = None
) -> Checked:
    """`verify_query` without the receipt, with the record behind the answer (for checks
    that compare more than the answer shows: `verify.lookup.file_check`)."""
    principal = request[PRINCIPAL]
    app = request.app  # a property of the request, and each app[...] a call: read once
    access = app[ACCESS]
    doc_id = query.key.doc_id if query.key else None  # by authority code: known after the read
    resilience = app[RESILIENCE]
    if access.limiter.remote:
        queued = access.queue_admit(principal, doc_id, key=key_due(request))
        admission, fetched = await _overlapped(access, queued, resilience.look_up(query))
    else:
        admission = await access.admit(principal, doc_id, key=key_due(request))
        fetched = await resilience.look_up(query)
    await access.settle(principal, admission, fetched.invoice)
    answer, invoice = await resilience.conclude(query, fetched, principal.key_id, callback_url)
    target = invoice.doc_id if invoice else query.lookup_key
    if invoice is None:
        access.spend_miss(principal, target)  # not waited for: see `Access.spend_miss`
        today = datetime.now(SCHEME_TZ[query.scheme]).date()
        answer = outside_window(
            answer, query, today, app[SETTINGS].verification_window_years
        )
    access.audit.record(principal, "verify", target, answer["status"], request.remote)
    if invoice is not None:
        answer = await _facts(request, app, answer, invoice, query, principal)
    return Checked(redact_answer(answer, principal), invoice, target)


async def _facts(
    request: web.Request,
    app: web.Application,
    answer: dict[str, Any],
    invoice: Invoice,
    query: LookupQuery,
    principal: Principal,
) -> dict[str, Any]:
    """What the answer adds or withholds about a found invoice: the Chinese second factor
    (the invoice's parties see their own whole), the check count its parties see, and the
    Vietnamese seller's status."""
    party = is_party(principal, invoice.seller_tax_id, invoice.buyer_tax_id)
    if app[SETTINGS].cn_second_factor and not party:
        answer = guard(answer, invoice, query.match)
    if party and principal.role is not Role.ADMIN:
        answer = {**answer, "check_count": await _check_count(request, invoice.doc_id)}
    seller = invoice.seller_tax_id
    if invoice.scheme != "vn" or seller is None:
        return answer
    try:
        found = await app[REGISTRY].get_taxpayers([seller])
    except Exception:  # the answer stands without the status; never a 5xx for it
        log.exception("could not read the seller's status", extra={"id": invoice.doc_id})
        return answer
    today = datetime.now(SCHEME_TZ["vn"]).date()
    return with_seller_status(answer, found.get(seller), invoice.issued_at.date(), today)


#: The most checks an answer counts (`check_count` says at most this many).
MAX_CHECK_COUNT = 1000


async def _check_count(request: web.Request, doc_id: str) -> int:
    """How often the invoice was checked (查验次数), this check included: its `verify`
    entries in the audit trail (kept `INVOICE_AUDIT_RETENTION_DAYS`), at most
    `MAX_CHECK_COUNT`. Only for keys scoped to the invoice's seller or buyer, as the
    platform shows it to the invoice's holder."""
    entries = await request.app[ACCESS].audit.query(
        action="verify", target=doc_id, limit=MAX_CHECK_COUNT
    )
    return len(entries)


async def _overlapped(
    access: Access, budget: QueuedAdmission, read: Awaitable[Fetched]
) -> tuple[Admission, Fetched]:
    """The read while the budget's turn (queued already, no task of its own) is on its way
    to Redis: with the Redis replica both travel in one round trip (`fallback.redis_trips`),
    so the request waits once, not twice. The budget's verdict still comes first: a refused
    caller gets its 429 whatever the read found or failed with, and nothing is recorded for
    it (`Resilience.conclude` runs after)."""
    try:
        fetched = await read
    except asyncio.CancelledError:
        budget.turn.drop()  # a verdict nobody waits for any more: retrieved, not logged
        raise
    except Exception:
        await access.admission(budget)
        raise
    return await access.admission(budget), fetched
