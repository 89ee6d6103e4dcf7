"""The verification core shared by every lookup endpoint: budgets, store, answer, tenancy,
audit. `GET /invoices/lookup` and the QR endpoints call the same function, so a code read
from a photo is verified, limited and recorded exactly like a typed-in key."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from verify.access.middleware import PRINCIPAL
from verify.access.tenancy import redact_answer
from verify.answer import build_answer
from verify.keys import ACCESS, STORE
from verify.lookup import LookupQuery


async def verify_query(request: web.Request, query: LookupQuery) -> dict[str, Any]:
    """The caller's answer for one query. Raises `ApiError` 429 when a budget is spent."""
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    target = query.key.doc_id if query.key else f"authority_code:{query.authority_code}"
    await access.spend_lookup_budget(principal, target)
    store = request.app[STORE]
    if query.key is not None:
        invoice = await store.get_invoice(query.key.doc_id)
    else:
        assert query.authority_code is not None
        invoice = await store.find_by_authority_code(query.authority_code)
    answer = build_answer(query, invoice)
    if invoice is None:
        await access.note_miss(principal)
    access.audit.record(principal, "verify", invoice.doc_id if invoice else target,
                        answer["status"], request.remote)
    return redact_answer(answer, principal)
