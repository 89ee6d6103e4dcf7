"""Lookup query parameters -> which key form was asked for, and the fields to match.

Forms (ARCHITECTURE.md): `seller_tax_id,template,series,number` (vn), `authority_code` (vn),
`code,number` (cn) or a 20-digit `number` alone (cn). Unknown or repeated parameters are
refused rather than ignored, so a typo never turns into a silently weaker check
(`verify.params`, the policy every route shares).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from multidict import MultiMapping

from indexer import vn
from indexer.keys import InvoiceKey, VnKey, cn_key, vn_key
from indexer.model import Invoice
from indexer.money import AmountError, parse_amount
from indexer.rules import RuleConfig
from indexer.store import InvoiceStore
from indexer.text import ascii_int
from verify.errors import ApiError
from verify.params import Query, invalid, read_query

KEY_PARAMS = frozenset({"seller_tax_id", "template", "series", "number", "authority_code",
                        "code"})
MATCH_PARAMS = frozenset({"total_amount", "amount", "issued_on", "check_code", "buyer_tax_id"})
_CHECK_CODE_RE = re.compile(r"\d{6}|\d{20}", re.ASCII)
#: No key or match field is longer (an authority code has 34 characters, a cash-register
#: code 23, an amount with its decimals far fewer): longer values are refused as a parameter
#: before any key or amount parser sees them.
MAX_PARAM_LENGTH = 64


@dataclass(frozen=True, slots=True)
class MatchFields:
    total_amount: Decimal | None = None
    amount: Decimal | None = None
    issued_on: date | None = None
    check_code: str | None = None
    buyer_tax_id: str | None = None


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


def reads_inline(store: InvoiceStore) -> bool:
    """Whether the store's point reads run on the event loop without ever suspending now
    (SQLite, bounded by its busy timeout, unless it paused them after one held the loop:
    `indexer/store/sqlite.py`). A timeout armed around such a read could never fire, so the
    request path arms none (about 8 us per lookup); around any other read it arms one."""
    return store.reads_inline


class CodeOwners:
    """Which document each authority code belongs to, learned from earlier lookups.

    A code is given to one invoice, once, and never moves (a unique index in SQLite, an index
    keyed by the code in Elasticsearch). Knowing its document, a lookup by code reads the
    invoice by id, the store's cheapest read (SQLite serves repeats from its cache instead of
    a query, about 40 us here; Elasticsearch needs one GET instead of two), and trusts the
    hint only when the record read back carries that very code: otherwise it asks the store
    by code as before. Bounded; what it forgets only costs the slower read again."""

    def __init__(self, max_codes: int = 50_000) -> None:
        self._owners: dict[str, str] = {}
        self._max = max_codes

    async def fetch(self, store: InvoiceStore, code: str) -> Invoice | None:
        doc_id = self._owners.get(code)
        if doc_id is not None:
            invoice = await store.get_invoice(doc_id)
            if invoice is not None and invoice.authority_code == code:
                return invoice
        invoice = await store.find_by_authority_code(code)
        if invoice is not None:
            if len(self._owners) >= self._max:
                self._owners.clear()
            self._owners[code] = invoice.doc_id
        return invoice


async def fetch_invoice(store: InvoiceStore, query: LookupQuery,
                        owners: CodeOwners | None = None) -> Invoice | None:
    """The one place a lookup query becomes a store read. `owners`: the code hints of the
    caller's lookup path (one per app, `verify.degraded.Resilience`); without, a lookup by
    code asks the store by code."""
    if query.key is not None:
        return await store.get_invoice(query.key.doc_id)
    assert query.authority_code is not None
    if owners is None:
        return await store.find_by_authority_code(query.authority_code)
    return await owners.fetch(store, query.authority_code)


def _bad(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(400, code, message, details)


_ALLOWED = KEY_PARAMS | MATCH_PARAMS
#: The lookup route's one parameter that is not part of the query: where to notify the
#: caller when an unconfirmed answer's gap is resolved.
CALLBACK = "callback_url"


#: What a lookup without fields to match carries (most lookups): one shared, immutable value.
_NOTHING_TO_MATCH = MatchFields()


def _match(params: Mapping[str, str]) -> MatchFields:
    if params.keys().isdisjoint(MATCH_PARAMS):
        return _NOTHING_TO_MATCH
    amounts: dict[str, Decimal | None] = {}
    for name in ("total_amount", "amount"):
        try:
            amounts[name] = parse_amount(params[name]) if params.get(name) else None
        except AmountError as exc:
            raise _bad("invalid_parameter", str(exc), parameter=name) from None
    issued_on = Query(dict(params)).day("issued_on")
    check = params.get("check_code") or None
    if check is not None and not _CHECK_CODE_RE.fullmatch(check):
        raise _bad("invalid_parameter", "check_code must be 20 digits or its last 6",
                   parameter="check_code")
    buyer = params.get("buyer_tax_id") or None
    return MatchFields(amounts["total_amount"], amounts["amount"], issued_on, check,
                       vn.normalise_tax_id(buyer) if buyer else None)


class VnPrefixes:
    """Prefixes of Vietnamese keys (seller tax id, template, series, as given) already found
    valid, with what they normalise to. Checking the tax id's check digit and the series
    pattern is most of what validating a key costs (about 10 us here), and a business looks
    up the invoices of the same suppliers and series again and again. A key whose prefix is
    known and whose number is plain digits in range is built at once; anything else goes
    through `vn_key` in full (which also words the violations). Per rule configuration, since
    severities decide what is valid; bounded."""

    def __init__(self, max_prefixes: int = 10_000) -> None:
        self._valid: dict[tuple[str, str, str], tuple[RuleConfig, VnKey]] = {}
        self._max = max_prefixes

    def key(self, params: Mapping[str, str], cfg: RuleConfig) -> VnKey | None:
        number = params.get("number")
        known = self._valid.get((params.get("seller_tax_id", ""), params.get("template", ""),
                                 params.get("series", "")))
        value = ascii_int(number, max_digits=len(str(vn.MAX_NUMBER)))
        if known is None or known[0] is not cfg or value is None \
                or not 1 <= value <= vn.MAX_NUMBER:
            return None
        prefix = known[1]
        return VnKey(prefix.seller_tax_id, prefix.template, prefix.series, value)

    def learn(self, params: Mapping[str, str], key: VnKey, cfg: RuleConfig) -> None:
        if len(self._valid) >= self._max:
            self._valid.clear()
        self._valid[(params["seller_tax_id"], params["template"], params["series"])] = (cfg, key)


_VN_PREFIXES = VnPrefixes()


def _key_error(violations: list[Any]) -> ApiError:
    return _bad("invalid_key", "the invoice key is not valid",
                violations=[v.as_dict() for v in violations])


def read_lookup(query: MultiMapping[str], cfg: RuleConfig,
                max_callback_url: int) -> tuple[LookupQuery, str | None]:
    """The lookup route's whole query, read once: the key and fields to match, and the
    `callback_url` as given (None when absent or empty) for the caller to validate."""
    params = read_query(query, _ALLOWED | {CALLBACK}, max_len=max_callback_url).values
    callback = params.pop(CALLBACK, None) or None
    for name, value in params.items():
        if len(value) > MAX_PARAM_LENGTH:
            raise invalid(name, f"{name} must be at most {MAX_PARAM_LENGTH} characters")
    return _parse(params, cfg), callback


def parse_lookup(query: MultiMapping[str], cfg: RuleConfig) -> LookupQuery:
    """A lookup from parameters (a batch row, a ledger line, a QR code's fields)."""
    return _parse(read_query(query, _ALLOWED, max_len=MAX_PARAM_LENGTH).values, cfg)


def _parse(params: dict[str, str], cfg: RuleConfig) -> LookupQuery:
    match = _match(params)
    given = {k for k, v in params.items() if v and k in KEY_PARAMS}
    if "authority_code" in given:
        if given != {"authority_code"}:
            raise _bad("ambiguous_key", "authority_code is a key on its own",
                       parameters=sorted(given))
        code = params["authority_code"].upper()
        if not (vn.AUTHORITY_CODE_RE.fullmatch(code) or vn.CASH_REGISTER_CODE_RE.fullmatch(code)):
            raise _bad("invalid_key", "authority_code must be 34 hex characters or a "
                       "cash-register code", parameter="authority_code")
        return LookupQuery("vn", None, code, match)
    if given & {"seller_tax_id", "template", "series"}:
        if "code" in given:
            raise _bad("ambiguous_key", "mixes Vietnamese and Chinese key fields",
                       parameters=sorted(given))
        key = _VN_PREFIXES.key(params, cfg)
        if key is None:
            key, problems = vn_key(params, cfg)
            if key is None:
                raise _key_error(problems)
            _VN_PREFIXES.learn(params, key, cfg)
        return LookupQuery("vn", key, None, match)
    if "number" in given:
        raw = {"invoice_code": params.get("code"), "invoice_number": params["number"]}
        cn, problems = cn_key(raw, cfg)
        if cn is None:
            raise _key_error(problems)
        return LookupQuery("cn", cn, None, match)
    raise _bad("missing_key", "give seller_tax_id+template+series+number, authority_code, "
               "code+number, or a 20-digit number")
