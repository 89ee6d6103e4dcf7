"""The desk: one form per key form (Vietnamese key, authority code, Chinese code + number,
20-digit number) with the fields to match, answered on the same page with the verdict card.
A plain GET form, so it works without JavaScript, and a link QR (`/web/desk?...`) opens
it with the lookup already made. Each verdict comes with its signed receipt, which the card
offers as a PDF download (`verify.web.receipt_views`), and says whether the signed-in key
watches the invoice, with its last change, or offers to watch it (`verify.web.watch_views`).
Lookups go through `verify_query`, as `GET /api/v1/invoices/lookup` does."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDict

from verify.http.errors import ApiError
from verify.keys import SETTINGS
from verify.lookup.query import KEY_PARAMS, MATCH_PARAMS, parse_lookup
from verify.lookup.verification import verify_query
from verify.receipts.state import RECEIPTS
from verify.web.render import page
from verify.web.verdict import card
from verify.web.watch_views import watch_line

#: The desk's forms: their key fields (the lookup's parameter names) in order.
FORMS = {
    "vn_key": ("seller_tax_id", "template", "series", "number"),
    "authority": ("authority_code",),
    "cn_code": ("code", "number"),
    "cn_number": ("number",),
}
MATCH_FIELDS = ("total_amount", "amount", "issued_on", "check_code", "buyer_tax_id")


def _form_of(params: dict[str, str]) -> str:
    given = set(params) & KEY_PARAMS
    if "authority_code" in given:
        return "authority"
    if given & {"seller_tax_id", "template", "series"}:
        return "vn_key"
    if "code" in given:
        return "cn_code"
    return "cn_number" if given else "vn_key"


async def desk(request: web.Request) -> web.StreamResponse:
    params = {
        k: v.strip()
        for k, v in request.query.items()
        if k in KEY_PARAMS | MATCH_PARAMS and v.strip()
    }
    chosen = request.query.get("form", "")
    form = chosen if chosen in FORMS else _form_of(params)
    context: dict[str, Any] = {
        "forms": FORMS,
        "match_fields": MATCH_FIELDS,
        "form": form,
        "given": params,
        "verdict": None,
        "watching": None,
        "error": None,
    }
    if params:
        try:
            query = parse_lookup(MultiDict(params), request.app[SETTINGS].rules)
            # with its receipt when one can be signed: the card offers it as a PDF
            receipt = request.app[RECEIPTS].ready
            answer = await verify_query(request, query, receipt=receipt)
            context["verdict"] = card(answer)
            context["watching"] = await watch_line(request, answer, query.lookup_key)
        except ApiError as exc:
            if exc.status == 429:
                raise
            context["error"] = exc
    return await page(
        request, "desk.html", context, status=400 if context["error"] is not None else 200
    )
