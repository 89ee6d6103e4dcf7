"""Signing and checking receipts: `Receipts.sign` on the lookup path, `Receipts.check` for
`POST /receipts/verify`, the PDF and the command line.

Signing builds the compact JWS itself (RFC 7515 section 7.1: the header segment, made once
per key, a dot, the payload's base64url, a dot, the signature's) and signs with libsodium
(PyNaCl's `crypto_sign`, over the key's 64-byte secret made once per key): the signature is
most of a receipt's cost, and libsodium's takes about two thirds of the time of
`cryptography`'s (OpenSSL's) for the same bytes (Ed25519 is deterministic: both give the
same signature); joserfc's `serialize_compact` would add another 20 us re-checking the same
fixed header and key on every call (bench/receipts.py, bench/README.md). Everything else
goes through joserfc: keys, thumbprints, the JWK Set, and every check
(tests/verify/test_receipts.py verifies what `sign` makes with joserfc and with
`cryptography`'s raw Ed25519 both).

A receipt verifies only when every byte is as signed: a compact JWS of three base64url
segments (joserfc refuses non-canonical base64url, so no two spellings carry the same
bytes), header `{"alg": "Ed25519", "kid", "typ": "invoice-receipt+jwt"}` and nothing else
the signature does not cover, a key id of the key set, and a JSON payload of version 1.
"""

from __future__ import annotations

import binascii
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet as JwkSet
from nacl.bindings import crypto_sign

from indexer.model import Invoice
from verify.receipts.claims import TYP, VERSION, receipt_claims
from verify.receipts.keyset import ALG, REGISTRY, KeySet, KeySetError, public_keys

#: No receipt is near this long (about 800 characters); anything longer is not one of ours.
MAX_RECEIPT = 8192
_HEADER_NAMES = frozenset({"alg", "kid", "typ"})


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    """base64url without padding (`base64.urlsafe_b64encode`'s bytes, in two C calls)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _receipt_id() -> str:
    """96 random bits as 16 base64url characters (`secrets.token_urlsafe(12)`, cheaper)."""
    return binascii.b2a_base64(os.urandom(12), newline=False).translate(_URLSAFE).decode()


class ReceiptInvalid(Exception):
    """Why a receipt does not verify: `code` is one of `malformed`, `unknown_key`,
    `bad_signature`, `unsupported`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Verified:
    kid: str
    claims: dict[str, Any]


def _segments(token: str) -> tuple[dict[str, Any], str]:
    """The header and its key id, checked before any signature work."""
    if len(token) > MAX_RECEIPT or not token.isascii() or token.count(".") != 2:
        raise ReceiptInvalid("malformed", "not a compact JWS (three base64url segments)")
    try:
        obj = jws.extract_compact(token.encode(), registry=REGISTRY)
    except (JoseError, ValueError) as exc:
        raise ReceiptInvalid("malformed", f"not a compact JWS: {exc}") from None
    header = obj.headers()
    if header.get("alg") != ALG or header.get("typ") != TYP or set(header) != _HEADER_NAMES:
        raise ReceiptInvalid(
            "unsupported",
            f'not a receipt: the header must be exactly {{"alg": "{ALG}", "kid", "typ": "{TYP}"}}',
        )
    kid = header["kid"]
    if not isinstance(kid, str):
        raise ReceiptInvalid("malformed", "the header's kid is not text")
    return header, kid


def verify_with(token: str, keys: JwkSet, kids: frozenset[str]) -> Verified:
    """`token` checked against `keys` (the service's or an auditor's copy of its JWKS)."""
    _, kid = _segments(token)
    if kid not in kids:
        raise ReceiptInvalid("unknown_key", f"no key {kid!r} in the key set")
    try:
        obj = jws.deserialize_compact(token, keys, registry=REGISTRY)
    except JoseError as exc:
        if exc.error == "bad_signature":
            raise ReceiptInvalid(
                "bad_signature",
                "the signature does not match the "
                "receipt: it was changed, or not signed by this key",
            ) from None
        raise ReceiptInvalid("malformed", f"not a receipt: {exc}") from None
    try:
        claims = orjson.loads(obj.payload)
    except orjson.JSONDecodeError:
        raise ReceiptInvalid("malformed", "the payload is not JSON") from None
    if not isinstance(claims, dict) or claims.get("v") != VERSION:
        raise ReceiptInvalid("unsupported", f"not a version {VERSION} receipt")
    return Verified(kid, claims)


def verify_with_jwks(token: str, jwks: Mapping[str, Any]) -> Verified:
    """Offline: against a saved JWK Set (`invoice-verify receipt verify --jwks`)."""
    try:
        keys = public_keys(jwks)
    except KeySetError as exc:
        raise ReceiptInvalid("unknown_key", f"unusable JWK Set: {exc}") from None
    kids = frozenset(str(entry["kid"]) for entry in jwks["keys"])
    return verify_with(token, keys, kids)


class Receipts:
    """The process's receipt keys (`keys` None: not loaded yet, receipts unavailable) and
    the issuer named in every receipt."""

    def __init__(
        self, keys: KeySet | None, issuer: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuer = issuer
        self._clock = clock
        self.keys: KeySet | None = None
        if keys is not None:
            self.use(keys)

    def use(self, keys: KeySet) -> None:
        """Sign with `keys`' current key from now on; verify against all of them."""
        self.keys = keys
        header = orjson.dumps({"alg": ALG, "kid": keys.current.kid, "typ": TYP})
        self._header = _b64(header) + b"."
        signer = keys.current.key.private_key
        if not isinstance(signer, Ed25519PrivateKey):
            raise KeySetError("the current receipt key is not a private Ed25519 key")
        # libsodium's secret key: the 32-byte seed, then the public key.
        self._secret = signer.private_bytes_raw() + signer.public_key().public_bytes_raw()
        self._verifying = keys.verifying_keys()
        self._kids = frozenset(keys.kids)

    @property
    def ready(self) -> bool:
        return self.keys is not None

    def sign(
        self, answer: Mapping[str, Any], invoice: Invoice | None, caller: str
    ) -> tuple[str, str]:
        """The receipt of `answer` as the caller was sent it, and the receipt's id."""
        if self.keys is None:
            raise RuntimeError("receipt keys are not loaded")
        receipt_id = _receipt_id()
        claims = receipt_claims(
            answer,
            invoice,
            caller=caller,
            issuer=self.issuer,
            issued_at=int(self._clock()),
            receipt_id=receipt_id,
        )
        signing_input = self._header + _b64(orjson.dumps(claims))
        signature = crypto_sign(signing_input, self._secret)[:64]  # signature, then message
        return (signing_input + b"." + _b64(signature)).decode(), receipt_id

    def knows(self, token: str) -> bool:
        """Whether the receipt's key id is in this process's key set (a rotation made by
        another process may not have reached it yet)."""
        try:
            return _segments(token)[1] in self._kids
        except ReceiptInvalid:
            return True  # nothing to learn by reloading

    def check(self, token: str) -> Verified:
        if self.keys is None:
            raise RuntimeError("receipt keys are not loaded")
        return verify_with(token, self._verifying, self._kids)
