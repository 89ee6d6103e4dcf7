"""Lookup query parameters -> the `LookupQuery` (`fallback.lookup.query`): which key form
was asked for, and the fields to match.

Forms (docs/formats.md#lookups-and-the-verification-answer):
`seller_tax_id,template,series,number` (vn), `authority_code` (vn), `code,number` (cn) or a
20-digit `number` alone (cn). Unknown or repeated parameters are refused rather than
ignored, so a typo never turns into a silently weaker check (`verify.http.params`, the
policy every route shares).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from multidict import MultiMapping

from fallback.lookup.query import NOTHING_TO_MATCH, LookupQuery, MatchFields
from indexer import vn
from indexer.keys import InvoiceKey, VnKey, cn_key, key_from_doc_id, vn_key
from indexer.money import AmountError, parse_amount
from indexer.rules import RuleConfig
from indexer.text import ascii_int
from verify.http.errors import ApiError
from verify.http.params import Query, invalid, read_query

KEY_PARAMS = frozenset({"seller_tax_id", "template", "series", "number", "authority_code", "code"})
MATCH_PARAMS = frozenset(
    {"total_amount", "amount", "tax_amount", "issued_on", "check_code", "buyer_tax_id"}
)
_CHECK_CODE_RE = re.compile(r"\d{6}|\d{20}", re.ASCII)
#: No key or match field is longer (an authority code has 34 characters, a cash-register
#: code 23, an amount with its decimals far fewer): longer values are refused as a parameter
#: before any key or amount parser sees them.
MAX_PARAM_LENGTH = 64


def _bad(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(400, code, message, details)


_ALLOWED = KEY_PARAMS | MATCH_PARAMS
#: The lookup route's one parameter that is not part of the query: where to notify the
#: caller when an unconfirmed answer's gap is resolved.
CALLBACK = "callback_url"


def _match(params: Mapping[str, str]) -> MatchFields:
    if params.keys().isdisjoint(MATCH_PARAMS):
        return NOTHING_TO_MATCH
    amounts: dict[str, Decimal | None] = {}
    for name in ("total_amount", "amount", "tax_amount"):
        try:
            amounts[name] = parse_amount(params[name]) if params.get(name) else None
        except AmountError as exc:
            raise _bad("invalid_parameter", str(exc), parameter=name) from None
    issued_on = Query(dict(params)).day("issued_on")
    check = params.get("check_code") or None
    if check is not None and not _CHECK_CODE_RE.fullmatch(check):
        raise _bad(
            "invalid_parameter",
            "check_code must be 20 digits or its last 6",
            parameter="check_code",
        )
    buyer = params.get("buyer_tax_id") or None
    return MatchFields(
        amounts["total_amount"],
        amounts["amount"],
        issued_on,
        check,
        vn.normalise_tax_id(buyer) if buyer else None,
        amounts["tax_amount"],
    )


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
        known = self._valid.get(
            (params.get("seller_tax_id", ""), params.get("template", ""), params.get("series", ""))
        )
        value = ascii_int(number, max_digits=len(str(vn.MAX_NUMBER)))
        if known is None or known[0] is not cfg or value is None or not 1 <= value <= vn.MAX_NUMBER:
            return None
        prefix = known[1]
        return VnKey(prefix.seller_tax_id, prefix.template, prefix.series, value)

    def learn(self, params: Mapping[str, str], key: VnKey, cfg: RuleConfig) -> None:
        if len(self._valid) >= self._max:
            self._valid.clear()
        self._valid[(params["seller_tax_id"], params["template"], params["series"])] = (cfg, key)


_VN_PREFIXES = VnPrefixes()


def _key_error(violations: list[Any]) -> ApiError:
    return _bad(
        "invalid_key", "the invoice key is not valid", violations=[v.as_dict() for v in violations]
    )


def path_key(doc_id: str) -> InvoiceKey:
    """The invoice an id in a path names (`/invoices/{id}/...`), or 400 `invalid_id`."""
    key = key_from_doc_id(doc_id)
    if key is None:
        raise ApiError(
            400,
            "invalid_id",
            "not an invoice id (vn:MST:template:series:number, "
            "cn:code:number or cn:20-digit number)",
            {"id": doc_id},
        )
    return key


def read_lookup(
    query: MultiMapping[str], cfg: RuleConfig, max_callback_url: int
) -> tuple[LookupQuery, str | None]:
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
            raise _bad(
                "ambiguous_key", "authority_code is a key on its own", parameters=sorted(given)
            )
        code = params["authority_code"].upper()
        if not (vn.AUTHORITY_CODE_RE.fullmatch(code) or vn.CASH_REGISTER_CODE_RE.fullmatch(code)):
            raise _bad(
                "invalid_key",
                "authority_code must be 34 hex characters or a cash-register code",
                parameter="authority_code",
            )
        return LookupQuery("vn", None, code, match)
    if given & {"seller_tax_id", "template", "series"}:
        if "code" in given:
            raise _bad(
                "ambiguous_key", "mixes Vietnamese and Chinese key fields", parameters=sorted(given)
            )
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
    raise _bad(
        "missing_key",
        "give seller_tax_id+template+series+number, authority_code, "
        "code+number, or a 20-digit number",
    )
