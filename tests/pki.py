"""A small certificate authority for signature tests, made with `cryptography`.

Three RSA-2048 keys (trusted root, untrusted "rogue" CA, seller) are generated once per
`make_pki()` call; tests call it from a module-scoped fixture. Seller certificates look like
the ones Vietnamese CAs issue (docs/vn-rules.md#58-seller-signature): the MST in the subject UID as
`MST:<mst>`, KeyUsage digitalSignature + nonRepudiation, no subjectAltName needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.factories import SELLER

VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
VALID_UNTIL = datetime(2030, 1, 1, tzinfo=UTC)
_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, uid: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                  x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if uid is not None:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, uid))
    return x509.Name(attributes)


def _usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=signer, content_commitment=signer,
                         key_encipherment=signer, data_encipherment=False, key_agreement=False,
                         key_cert_sign=not signer, crl_sign=not signer, encipher_only=False,
                         decipher_only=False)


def _ca(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = _name(common_name)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2019, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(signer=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))


@dataclass(frozen=True)
class Pki:
    root_key: rsa.RSAPrivateKey
    root: x509.Certificate
    rogue_key: rsa.RSAPrivateKey
    rogue: x509.Certificate
    seller_key: rsa.RSAPrivateKey

    def leaf(self, uid: str | None = f"MST:{SELLER}", *, trusted: bool = True,
             not_before: datetime = VALID_FROM,
             not_after: datetime = VALID_UNTIL) -> x509.Certificate:
        """A seller certificate for `seller_key`, issued by the root (or the rogue CA)."""
        issuer_key, issuer = (self.root_key, self.root) if trusted else (self.rogue_key,
                                                                         self.rogue)
        return (x509.CertificateBuilder()
                .subject_name(_name("CÔNG TY CỔ PHẦN THỬ NGHIỆM", uid))
                .issuer_name(issuer.subject).public_key(self.seller_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_usage(signer=True), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                      _DOCUMENT_SIGNING]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer_key.public_key()), critical=False)
                .sign(issuer_key, hashes.SHA256()))

    @property
    def anchors_pem(self) -> bytes:
        """What an operator puts in INVOICE_TRUST_ANCHORS: the trusted root only."""
        return self.root.public_bytes(serialization.Encoding.PEM)


def make_pki() -> Pki:
    root_key, rogue_key = _key(), _key()
    return Pki(root_key, _ca(root_key, "Test National Root CA"), rogue_key,
               _ca(rogue_key, "Rogue CA"), _key())
