"""What a receipt says: the facts of one verification answer as its caller saw it (after
tenancy redaction), who asked, when, and a digest of the invoice record the answer was read
from. Never more than the answer: a degraded, pending or unconfirmed answer's receipt carries
exactly those fields (`degraded`, `source`, `as_of`, `pending_intake`, `status`, `reason`,
`gap_id`), and `statement` puts them in one plain sentence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from indexer.codec import invoice_to_doc
from indexer.model import Invoice

VERSION = 1
#: The JWS header's `typ` (RFC 8725 section 3.11: explicit typing, so a receipt is never
#: taken for some other token signed by the same key).
TYP = "invoice-receipt+jwt"
#: The answer's fields a receipt carries, as the answer has them.
ANSWER_FIELDS = ("status", "scheme", "key", "mismatches", "source", "degraded", "as_of", "gap_id")


#: Digests by invoice object: a store hands out the same object for a record until the record
#: changes (the stores' caches), so a receipt of a record already signed costs an identity
#: test, not the 2 us of hashing and comparing every field of an equal one. The object is
#: kept with its digest, so its id cannot be reused while it is listed. Bounded.
_BY_OBJECT: dict[int, tuple[Invoice, str]] = {}
#: Digests by invoice value (equal invoices have equal stored documents), for stores that
#: decode a new object per read. Bounded.
_DIGESTS: dict[Invoice, str] = {}
_DIGESTS_MAX = 10_000


def record_digest(invoice: Invoice) -> str:
    """SHA-256 (hex) of the invoice's stored document (`indexer.codec.invoice_to_doc`, the one
    shape every store keeps) as canonical JSON: keys sorted, no whitespace, UTF-8, which for
    these documents (text, integers, nulls) is RFC 8785's form. Cached per record version:
    a changed record is a new (unequal) object, so it is never given an older digest."""
    known = _BY_OBJECT.get(id(invoice))
    if known is not None and known[0] is invoice:
        return known[1]
    digest = _DIGESTS.get(invoice)
    if digest is None:
        doc = orjson.dumps(invoice_to_doc(invoice), option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(doc).hexdigest()
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
        _DIGESTS[invoice] = digest
    if len(_BY_OBJECT) >= _DIGESTS_MAX:
        _BY_OBJECT.clear()
    _BY_OBJECT[id(invoice)] = (invoice, digest)
    return digest


def receipt_claims(
    answer: Mapping[str, Any],
    invoice: Invoice | None,
    *,
    caller: str,
    issuer: str,
    issued_at: int,
    receipt_id: str,
) -> dict[str, Any]:
    """The receipt's payload for `answer` (a lookup answer or a ledger line, as sent to the
    caller) and the invoice it was read from (None: nothing was found)."""
    shown = answer.get("invoice")
    claims: dict[str, Any] = {
        "v": VERSION,
        "iss": issuer,
        "iat": issued_at,
        "jti": receipt_id,
        "caller": caller,
        "invoice": shown.get("id") if isinstance(shown, Mapping) else None,
        **{name: answer.get(name) for name in ANSWER_FIELDS},
        "record_sha256": record_digest(invoice) if invoice is not None else None,
    }
    if answer.get("reason") is not None:
        claims["reason"] = answer["reason"]
    if answer.get("pending_intake"):
        claims["pending_intake"] = True
    return claims


def statement(claims: Mapping[str, Any]) -> str:
    """What the receipt vouches for, in one sentence (the PDF's banner, the CLI)."""
    status, as_of = claims.get("status"), claims.get("as_of")
    if status == "unconfirmed":
        return (
            f"UNCONFIRMED: the invoice could not be confirmed or ruled out at {as_of} "
            f"({claims.get('reason') or 'unknown reason'}; gap {claims.get('gap_id')}). "
            "This receipt does not say the invoice exists or does not exist."
        )
    if claims.get("pending_intake"):
        where = "from a package received but not yet in the primary index"
    elif claims.get("degraded"):
        where = (
            f"DEGRADED: from the {claims.get('source')} copy as of {as_of}, "
            "not confirmed by the primary index"
        )
    else:
        where = f"from the {claims.get('source')} index at {as_of}"
    return f"Answered {status!s}, {where}."
