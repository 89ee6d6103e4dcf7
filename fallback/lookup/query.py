"""What a lookup asks: which key form (`LookupQuery`) and the fields to match
(`MatchFields`).

Forms (docs/formats.md#lookups-and-the-verification-answer):
`seller_tax_id,template,series,number` (vn), `authority_code` (vn), `code,number` (cn) or a
20-digit `number` alone (cn). Reading them from a request, a batch row, a ledger line or a
QR code is the HTTP layer's (`verify.lookup.query`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from indexer.keys import InvoiceKey, key_from_doc_id

#: A lookup by authority code, as the gap ledger and the audit trail name it.
AUTHORITY_CODE_PREFIX = "authority_code:"


@dataclass(frozen=True, slots=True)
class MatchFields:
    total_amount: Decimal | None = None
    amount: Decimal | None = None
    issued_on: date | None = None
    check_code: str | None = None
    buyer_tax_id: str | None = None
    tax_amount: Decimal | None = None


#: What a lookup without fields to match carries (most lookups): one shared, immutable value.
NOTHING_TO_MATCH = MatchFields()


@dataclass(frozen=True, slots=True)
class LookupQuery:
    scheme: str
    key: InvoiceKey | None  # None when asked by authority code
    authority_code: str | None
    match: MatchFields

    def asked(self) -> dict[str, Any]:
        """The key as the caller gave it, echoed in answers that found nothing."""
        if self.key is not None:
            return self.key.as_dict()
        return {"authority_code": self.authority_code}

    @property
    def lookup_key(self) -> str:
        """The invoice id, or `authority_code:<code>`: the gap ledger's and the audit
        trail's name for what was asked."""
        if self.key is not None:
            return self.key.doc_id
        return f"{AUTHORITY_CODE_PREFIX}{self.authority_code}"

    @classmethod
    def of_lookup_key(
        cls, lookup_key: str, match: MatchFields = NOTHING_TO_MATCH
    ) -> LookupQuery | None:
        """The lookup a `lookup_key` names (None when it names none)."""
        if lookup_key.startswith(AUTHORITY_CODE_PREFIX):
            return cls("vn", None, lookup_key.removeprefix(AUTHORITY_CODE_PREFIX), match)
        key = key_from_doc_id(lookup_key)
        return None if key is None else cls(key.scheme, key, None, match)
