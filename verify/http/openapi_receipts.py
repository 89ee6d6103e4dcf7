"""The receipts' part of `/openapi.json` (docs/receipts.md): the `receipt` parameter of the
answer routes, the receipt routes' bodies and statuses, and their schemas; the operations
themselves are in `verify.http.openapi` with the others."""

from __future__ import annotations

from typing import Any

from verify.http import openapi_schemas as s

RECEIPT_PARAM: dict[str, Any] = {
    "name": "receipt",
    "in": "query",
    "required": False,
    "description": "true: the answer (each code's, for a photo) carries `receipt`, a signed "
    "receipt of it (a compact JWS, Ed25519; docs/receipts.md)",
    "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
}

_RECEIPT_TEXT = {
    "type": "string",
    "maxLength": 8192,
    "description": "a receipt: the compact JWS an answer carried",
}
RECEIPT_BODY = {
    "application/json": {
        "schema": {
            **s.obj(["receipt"], receipt=_RECEIPT_TEXT),
            "description": '{"receipt": "..."}, or a whole answer as saved (only its receipt '
            "is read)",
        }
    },
    "application/jose": {"schema": _RECEIPT_TEXT},
}
BODY_ERRORS = {
    "415": "neither application/json nor application/jose",
    "422": "no receipt string in the body",
}
UNAVAILABLE = {"503": "the receipt keys cannot be read now (Retry-After)"}

JWKS = s.obj(
    ["keys"],
    keys={
        "type": "array",
        "items": s.obj(
            ["kty", "crv", "x", "kid"],
            kty={"type": "string", "enum": ["OKP"]},
            crv={"type": "string", "enum": ["Ed25519"]},
            x=s.STR,
            kid=s.STR,
            use=s.STR,
            alg=s.STR,
        ),
    },
)
RECEIPT_CHECK = s.obj(
    ["valid"],
    valid=s.BOOL,
    kid=s.STR,
    statement=s.STR,
    claims={**s.ANY_OBJECT, "description": "the receipt's signed facts (docs/receipts.md)"},
    error=s.obj(
        ["code", "message"],
        code={
            "type": "string",
            "enum": ["malformed", "unknown_key", "bad_signature", "unsupported"],
        },
        message=s.STR,
    ),
)


SCHEMAS: dict[str, Any] = {"Jwks": JWKS, "ReceiptCheck": RECEIPT_CHECK}
