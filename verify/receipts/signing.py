"""Signing and checking receipts: `Receipts.sign_soon` on the answers' path (`sign` where no
event loop runs), `Receipts.check` for `POST /receipts/verify`, the PDF and the command line.

Signing builds the compact JWS itself (RFC 7515 section 7.1: the header segment, made once
per key, a dot, the payload's base64url, a dot, the signature's) and signs with libsodium
(PyNaCl's `crypto_sign`, over the key's 64-byte secret made once per key): the signature is
most of a receipt's cost, and libsodium's takes about two thirds of the time of
`cryptography`'s (OpenSSL's) for the same bytes (Ed25519 is deterministic: both give the
same signature); joserfc's `serialize_compact` would add another 20 us re-checking the same
fixed header and key on every call (bench/receipts.py, bench/README.md). On the service's
path (`sign_soon`) the signatures asked for in one turn of the event loop are made one after
another at the end of that turn (`_Burst`): a signature squeezed between two lookups finds
libsodium's code and tables evicted from the CPU's caches and costs several times what it
does in a loop, back to back they stay warm (bench/README.md: the receipt's cost fell from
about a quarter of a lookup's throughput to about a sixth). Everything else
goes through joserfc: keys, thumbprints, the JWK Set, and every check
(tests/verify/test_receipts.py verifies what `sign` makes with joserfc and with
`cryptography`'s raw Ed25519 both).

A receipt verifies only when every byte is as signed: a compact JWS of three base64url
segments (joserfc refuses non-canonical base64url, so no two spellings carry the same
bytes), header `{"alg": "Ed25519", "kid", "typ": "invoice-receipt+jwt"}` and nothing else
the signature does not cover, a key id of the key set, and a JSON payload of version 1.
"""

from __future__ import annotations

import asyncio
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


def _token(signing_input: bytes, signature: bytes) -> str:
    return (signing_input + b"." + _b64(signature)).decode()


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


class _Burst:
    """The Ed25519 signatures asked for in one turn of the event loop, made one after the
    other once the turn's other callbacks have run (`call_soon`). Each receipt keeps its own
    standard signature; what is shared is the CPU's caches: a signature made right after
    another finds libsodium's code and tables warm, while one made between two lookups finds
    them evicted and costs several times its figure in a loop (bench/README.md)."""

    def __init__(self) -> None:
        self._pending: list[tuple[bytes, bytes, asyncio.Future[bytes]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def signature(self, signing_input: bytes, secret: bytes) -> asyncio.Future[bytes]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        if self._pending and loop is not self._loop:  # another loop's burst: not shared
            future.set_result(_signature(signing_input, secret))
            return future
        if not self._pending:
            self._loop = loop
            loop.call_soon(self._sign_all)
        self._pending.append((signing_input, secret, future))
        return future

    def _sign_all(self) -> None:
        pending, self._pending = self._pending, []
        for signing_input, secret, future in pending:
            if future.cancelled():
                continue
            try:
                future.set_result(_signature(signing_input, secret))
            except Exception as exc:
                future.set_exception(exc)


def _signature(signing_input: bytes, secret: bytes) -> bytes:
    return crypto_sign(signing_input, secret)[:64]  # libsodium gives the signature, then the input


class Receipts:
    """The process's receipt keys (`keys` None: not loaded yet, receipts unavailable) and
    the issuer named in every receipt."""

    def __init__(
        self, keys: KeySet | None, issuer: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuer = issuer
        self._clock = clock
        self.keys: KeySet | None = None
        self._burst = _Burst()
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
        signing_input, secret, receipt_id = self._signing_input(answer, invoice, caller)
        return _token(signing_input, _signature(signing_input, secret)), receipt_id

    async def sign_soon(
        self, answer: Mapping[str, Any], invoice: Invoice | None, caller: str
    ) -> tuple[str, str]:
        """`sign` on the event loop: the signature is made with the others asked for in the
        same turn of the loop (`_Burst`); the same receipt, a turn later."""
        signing_input, secret, receipt_id = self._signing_input(answer, invoice, caller)
        signature = await self._burst.signature(signing_input, secret)
        return _token(signing_input, signature), receipt_id

    def _signing_input(
        self, answer: Mapping[str, Any], invoice: Invoice | None, caller: str
    ) -> tuple[bytes, bytes, str]:
        """The header and payload segments, the secret key they are to be signed with (the
        current key's, as the header names it) and the receipt's id."""
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
        return self._header + _b64(orjson.dumps(claims)), self._secret, receipt_id

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
