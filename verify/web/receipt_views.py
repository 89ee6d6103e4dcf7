"""The receipt of a verdict the pages showed, as a PDF download: the verdict card of the desk
carries the receipt signed with its answer (`verify_query(..., receipt=True)`, so the PDF is
of exactly the answer shown) in a small form that posts it here; the PDF is drawn by
`POST /api/v1/receipts/pdf`'s own code, under that route's roles and budget, and audited as
`receipt.pdf` (docs/pages.md, docs/receipts.md)."""

from __future__ import annotations

from aiohttp import web

from verify.http.errors import ApiError
from verify.receipts.signing import MAX_RECEIPT
from verify.receipts.views import pdf_response
from verify.web.forms import FORM

#: The form holds the CSRF token and the receipt (about 800 characters).
FORM_LIMIT = 16 * 1024


async def receipt_pdf(request: web.Request) -> web.StreamResponse:
    form = request.get(FORM)
    token = form.get("receipt") if form is not None else ""
    if not token or len(token) > MAX_RECEIPT:
        raise ApiError(422, "invalid_body", "the form carries no receipt", {"field": "receipt"})
    return await pdf_response(request, token)
