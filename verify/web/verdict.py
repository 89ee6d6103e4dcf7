"""A verification answer as the verdict card shows it: the status in words and colour, the
key facts, what differs, links to the related invoices, and for a degraded answer where it
came from, as of when, and the gap that will be re-checked."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

#: Each status's colour class (always shown with its words, never by colour alone).
TONES = {
    "valid": "good",
    "mismatch": "bad",
    "cancelled": "bad",
    "replaced": "warn",
    "adjusted": "warn",
    "not_found": "bad",
    "unconfirmed": "warn",
}
_FACTS = (
    "seller_name",
    "seller_tax_id",
    "number",
    "issued_on",
    "total_amount",
    "currency",
    "buyer_name",
    "buyer_tax_id",
    "authority_code",
)


def lookup_params(key: dict[str, Any]) -> dict[str, str]:
    """The desk's lookup parameters for an answer's key (either scheme's)."""
    if "invoice_number" in key:
        params = {"number": str(key["invoice_number"])}
        if key.get("invoice_code"):
            params["code"] = str(key["invoice_code"])
        return params
    if "authority_code" in key:
        return {"authority_code": str(key["authority_code"])}
    return {
        name: str(key[name])
        for name in ("seller_tax_id", "template", "series", "number")
        if key.get(name) is not None
    }


def desk_link(key: dict[str, Any]) -> str:
    return "/web/desk?" + urlencode(lookup_params(key))


def _link_query(answer: dict[str, Any]) -> str | None:
    """The link QR's parameters (`verify.web.link_qr`): the key, total and date."""
    invoice = answer.get("invoice")
    if not invoice or not answer.get("key"):
        return None
    params = lookup_params(answer["key"])
    params.update({k: str(invoice[k]) for k in ("total_amount", "issued_on") if invoice.get(k)})
    return urlencode(params)


def card(answer: dict[str, Any]) -> dict[str, Any]:
    invoice = answer.get("invoice") or {}
    key = answer.get("key") or {}
    number = key.get("number", key.get("invoice_number"))
    series = " ".join(str(key[k]) for k in ("template", "series", "invoice_code") if key.get(k))
    values = {**invoice, "number": f"{series} {number}".strip() if number else None}
    facts = [(name, values[name]) for name in _FACTS if values.get(name)]
    related = [
        {
            "relation": r["relation"],
            "id": r.get("id") or r.get("notice_id"),
            "link": desk_link(r["key"]) if r.get("key") else None,
        }
        for r in answer.get("related", [])
    ]
    return {
        "status": answer["status"],
        "tone": TONES.get(answer["status"], "warn"),
        "facts": facts,
        "mismatches": answer.get("mismatches", []),
        "related": related,
        "degraded": bool(answer.get("degraded")),
        "source": answer.get("source"),
        "as_of": answer.get("as_of"),
        "gap_id": answer.get("gap_id"),
        "redacted": invoice.get("redacted", []),
        "link_query": _link_query(answer),
        #: The answer's signed receipt, when it came with one (a PDF download on the card).
        "receipt": answer.get("receipt"),
    }
