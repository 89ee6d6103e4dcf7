"""The receipt signing keys: one current Ed25519 key that signs, and the public half of every
key that signed before it. Rotation makes a new current key and keeps the old public keys
listed (their private halves are dropped), so every receipt ever signed still verifies.

Kept as one JSON document (the same in a file, in Redis or in Elasticsearch:
`verify.receipts.keystore`); each key's `kid` is its RFC 7638 thumbprint, so a key id can
be checked against the key itself. Keys are JWKs through joserfc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet as JwkSet
from joserfc.jwk import OKPKey

#: RFC 9864's fully specified name for EdDSA over Ed25519 (RFC 8037's "EdDSA" is deprecated
#: there: it does not say which curve). The signature bytes are the same.
ALG = "Ed25519"
FORMAT = "invoice-verify receipt keys 1"
#: Only this algorithm is accepted when verifying: never "none", never an HMAC.
REGISTRY = jws.JWSRegistry(algorithms=[ALG])


class KeySetError(ValueError):
    """A stored key set that cannot be used (not ours, a key that is not Ed25519, a key id
    that is not its key's thumbprint, no private current key)."""


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    created_at: str
    #: The private key for the current key, the public key for every retired one.
    key: OKPKey

    def public_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": ALG}

    def stored(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "created_at": self.created_at,
            "jwk": self.key.as_dict(private=self.key.is_private),
        }


def new_key(now: datetime | None = None) -> SigningKey:
    key = OKPKey.generate_key("Ed25519", private=True)
    return SigningKey(key.thumbprint(), _stamp(now or datetime.now(UTC)), key)


def _public(key: SigningKey) -> SigningKey:
    return SigningKey(key.kid, key.created_at, OKPKey.import_key(key.key.as_dict(private=False)))


@dataclass(frozen=True, slots=True)
class KeySet:
    current: SigningKey
    #: Every key, newest first; the current key is the first.
    keys: tuple[SigningKey, ...]

    @classmethod
    def generate(cls, now: datetime | None = None) -> KeySet:
        key = new_key(now)
        return cls(key, (key,))

    def rotated(self, now: datetime | None = None) -> KeySet:
        """A new current key; the old ones stay, public only."""
        key = new_key(now)
        return KeySet(key, (key, *(_public(k) for k in self.keys)))

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(k.kid for k in self.keys)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517 section 5): `/.well-known/jwks.json`."""
        return {"keys": [k.public_jwk() for k in self.keys]}

    def verifying_keys(self) -> JwkSet:
        return public_keys(self.jwks())

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"format": FORMAT, "current": self.current.kid, "keys": [k.stored() for k in self.keys]}
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> KeySet:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise KeySetError("not JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise KeySetError(f"not a receipt key set (format {FORMAT!r})")
        entries = data.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeySetError("no keys")
        keys = tuple(_stored_key(entry) for entry in entries)
        if len({k.kid for k in keys}) != len(keys):
            raise KeySetError("a key id is listed twice")
        current = next((k for k in keys if k.kid == data.get("current")), None)
        if current is None or not current.key.is_private:
            raise KeySetError("the current key is not listed with its private half")
        return cls(current, (current, *(k for k in keys if k is not current)))


def _stored_key(entry: Any) -> SigningKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("jwk"), dict):
        raise KeySetError("a key entry is not {kid, created_at, jwk}")
    key = _okp(entry["jwk"])
    kid = entry.get("kid")
    if kid != key.thumbprint():
        raise KeySetError(f"key id {kid!r} is not its key's thumbprint")
    return SigningKey(kid, str(entry.get("created_at") or ""), key)


def _okp(jwk: Mapping[str, Any]) -> OKPKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeySetError("receipt keys are Ed25519 (kty OKP, crv Ed25519)")
    try:
        return OKPKey.import_key(dict(jwk))
    except (JoseError, ValueError, TypeError) as exc:
        raise KeySetError(f"unusable key: {exc}") from None


def public_keys(jwks: Mapping[str, Any]) -> JwkSet:
    """The verifying keys of a JWK Set (the service's, or an auditor's saved copy): Ed25519
    public keys only, each under its `kid`."""
    entries = jwks.get("keys")
    if not isinstance(entries, Sequence) or not entries:
        raise KeySetError("a JWK Set needs a non-empty `keys` list")
    keys = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
            raise KeySetError("every key of the set needs its `kid`")
        public = {k: v for k, v in entry.items() if k != "d"}
        key = _okp(public)
        if entry["kid"] != key.thumbprint():
            raise KeySetError(f"key id {entry['kid']!r} is not its key's thumbprint")
        keys.append(OKPKey.import_key(public, parameters={"kid": entry["kid"]}))
    return JwkSet(keys)  # type: ignore[arg-type]
