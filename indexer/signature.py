"""The seller's XML signature on a Vietnamese invoice (docs/vn-rules.md#58-seller-signature;
§5.1, §7 there).

An `HDon` carries the seller's enveloped W3C XML-DSig in `DSCKS/NBan/Signature`; its reference
`URI="#<DLHDon/@Id>"` covers the invoice data and a second reference covers a
`SigningTime` object. This module answers one question per invoice: is `DLHDon` signed by a
certificate that chains to a configured trust anchor, was valid when it signed, and names the
seller's MST? The answer is at most one violation, the first of: `vn.signature.missing`,
`vn.signature.invalid` (structure, crypto, or the signature does not cover `DLHDon`),
`vn.signature.untrusted` (chain or validity period), `vn.signature.tax_id_mismatch`. The
certificate's claims are only compared once its signature and chain hold, so a forged
certificate never produces a misleading "wrong tax id".

Division of work, and why:
- `cryptography`'s path validation (`x509.verification`) builds the chain against
  `TrustAnchors`, loaded once at start-up. signxml's own `ca_pem_file` re-reads a file on every
  call and cannot take a directory, so the leaf certificate is validated here and handed to
  signxml as `x509_cert` (its documented "trusted external certificate" input).
- signxml's `XMLVerifier` does the XML-DSig work: SignedInfo canonicalisation, RSA, every
  reference's digest. It is pinned to the seller's `ds:Signature` (`location`) because an
  invoice may also carry the buyer's and the tax authority's, resolves reference URIs by the
  `Id` attribute only, and refuses ambiguous Ids, so `#<Id>` names exactly one element.
- "See what is signed": after verification the reference whose URI is `#<Id of our DLHDon>`
  must have produced that `DLHDon` element, and references may only use the
  enveloped-signature and canonicalisation transforms (anything else could digest less than
  the whole element). A signature over `MCCQT`, over only the `SigningTime`, or moved from
  another invoice fails as `invalid`.

Validity time: the certificate must have been valid when the invoice was signed. That is the
`SigningTime` when a reference covers it, else the issue date `NLap` (inside the signed
`DLHDon`; a date alone is taken as 00:00 Vietnam time, as the rest of intake reads it), else
now; never later than now, so a future-dated claim cannot bring in a not-yet-valid
certificate. Both claims are the signer's own (there is no time-stamp authority in the
format), so an expired key can still back-date; an unsigned `SigningTime` is ignored.

No anchors configured means no signature checks at all (the demo default): an empty trust
store would reject every real invoice. Cash-register invoices (series letter `M`) need no
per-invoice seller signature, since their package is signed (§5.8, §6.3); one that is present
is still verified. Their package's signature (`TDiep/CKSNNT`, §6.3) is checked by
`check_package_signature` with the same machinery (`_Signed` says where each signature sits,
what it covers and which rules its failures break).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from indexer.package import Package
from indexer.rules import RuleConfig, Severity, Violation
from indexer.vn import normalise_tax_id

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_NS = {"ds": DS_NS}
VN_TZ = timezone(timedelta(hours=7))  # NLap and SigningTime are Vietnam local time (§1.4)

# vn-einvoice §5.8: seller signatures are rsa-sha256/sha256 and, in a real 2025 invoice,
# rsa-sha1/sha1; "the verifier must accept both". signxml leaves every SHA-1 method out of its
# defaults, so both lists are spelled out; nothing else that was not seen is accepted.
SIGNATURE_METHODS = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA1})
DIGEST_ALGORITHMS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA1})
# Transforms that keep a reference's digest over its whole element.
_WHOLE_ELEMENT_TRANSFORMS = frozenset(
    {SignatureConstructionMethod.enveloped.value, *(m.value for m in CanonicalizationMethod)}
)
# Values of the Id attribute are what `URI="#..."` names (§5.1: DLHDon/@Id, MCCQT/@Id).
_ID = "Id"
_UID_PREFIX = "MST:"


class TrustAnchorError(ValueError):
    """The configured trust anchors cannot be used; the message names the file."""


class TrustAnchors:
    """CA certificates that seller certificates must chain to, read once from PEM files.

    Empty (`TrustAnchors.none()`) means signature checks are off. Any certificate listed is
    trusted as an anchor, so list the national root and the licensed CAs' certificates that
    you accept, not end-entity certificates.
    """

    __slots__ = ("certificates", "source", "store")

    def __init__(self, certificates: tuple[x509.Certificate, ...], source: str = "") -> None:
        self.certificates = certificates
        self.source = source
        self.store: Store | None = Store(list(certificates)) if certificates else None

    @classmethod
    def none(cls) -> TrustAnchors:
        return cls(())

    @property
    def enabled(self) -> bool:
        return self.store is not None

    @classmethod
    def from_pem(cls, data: bytes, source: str = "") -> TrustAnchors:
        if not data.strip():
            return cls((), source)
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise TrustAnchorError(
                f"{source or 'PEM data'}: not PEM certificates ({exc})"
            ) from None
        return cls(tuple(certificates), source)

    @classmethod
    def load(cls, path: Path) -> TrustAnchors:
        """A PEM file (one or more certificates) or a directory of `*.pem`/`*.crt`/`*.cer`
        PEM files. Finding no certificate is an error: a trust store that is configured but
        empty would silently reject every invoice."""
        if path.is_dir():
            files = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in {".pem", ".crt", ".cer"}
            )
        else:
            files = [path]
        certificates: list[x509.Certificate] = []
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise TrustAnchorError(f"{file}: cannot read ({exc.strerror})") from None
            certificates.extend(cls.from_pem(data, str(file)).certificates)
        if not certificates:
            raise TrustAnchorError(f"{path}: no PEM certificate found")
        return cls(tuple(certificates), str(path))


class _Rejected(Exception):
    def __init__(self, code: str, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def _key_usage_allows_signing(policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage) -> None:
    if not (usage.digital_signature or usage.content_commitment):
        raise ValueError("key usage allows neither digitalSignature nor nonRepudiation")


# The end-entity policy is signxml's own default (any extensions, KeyUsage must allow signing;
# nonRepudiation accepted too, as document-signing certificates use it). cryptography's
# web-PKI default would demand a subjectAltName, which signing certificates need not have.
# CA certificates keep cryptography's CA/B Forum policy: basicConstraints CA, keyCertSign.
_EE_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _key_usage_allows_signing
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def is_cash_register_series(series: str | None) -> bool:
    """Series letter 4 is `M` (§1.2); a template digit wrongly prefixed is skipped."""
    if not series:
        return False
    text = series.strip()
    if len(text) == 7 and text[0].isdigit():
        text = text[1:]
    return len(text) == 6 and text[3] == "M"


def _vn_time(text: str | None) -> datetime | None:
    """`YYYY-MM-DD[Thh:mm:ss[offset]]`; without an offset it is Vietnam time."""
    if not text or not text.strip() or len(text) > 64 or not text.isascii():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if not 1900 <= value.year <= 9000:  # an aware year 1 or 9999 overflows in comparisons
        return None
    return value.replace(tzinfo=VN_TZ) if value.tzinfo is None else value


def _certificates(signature: etree._Element, invalid: str) -> list[x509.Certificate]:
    texts = [
        c.text or "" for c in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS)
    ]
    if not texts:
        raise _Rejected(invalid, "no X509Certificate in the signature's KeyInfo")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(t)) for t in texts]
    except (ValueError, binascii.Error) as exc:
        raise _Rejected(invalid, f"unreadable X509Certificate: {_short(exc)}") from None


def _leaf_first(chain: list[x509.Certificate]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The signing certificate is the one that issued none of the others (X509Data has no
    required order); the rest are untrusted intermediates for path building."""
    for cert in chain:
        others = [c for c in chain if c is not cert]
        if all(c.issuer != cert.subject for c in others):
            return cert, others
    return chain[0], chain[1:]


def _signed_signing_time(signature: etree._Element, uris: set[str]) -> datetime | None:
    """The `SigningTime` inside a `ds:Object` that one of the references names, by the Id of
    the element itself or of an ancestor up to the Object. Once the signature verifies, every
    reference's digest has been checked, so such a time was signed."""
    for obj in signature.findall("ds:Object", _NS):
        for element in obj.iter():
            if _local(element) != "SigningTime":
                continue
            holders = [element, *element.iterancestors()]
            holders = holders[: holders.index(obj) + 1]
            if any(h.get(_ID) and f"#{h.get(_ID)}" in uris for h in holders):
                return _vn_time(element.text)
    return None


def _issue_time(data: etree._Element) -> datetime | None:
    general = next((c for c in data if _local(c) == "TTChung"), None)
    nlap = None if general is None else next((c for c in general if _local(c) == "NLap"), None)
    return None if nlap is None else _vn_time(nlap.text)


def _uid_values(cert: x509.Certificate) -> list[str]:
    values = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return [
        v.value.decode(errors="replace") if isinstance(v.value, bytes) else v.value for v in values
    ]


def _uid_names(value: str, tax_id: str) -> bool:
    """`MST:<mst>` as §5.8 observes it, or the bare MST; branch suffixes compared normalised."""
    text = value.strip()
    if text[: len(_UID_PREFIX)].upper() == _UID_PREFIX:
        text = text[len(_UID_PREFIX) :]
    return normalise_tax_id(text) == normalise_tax_id(tax_id)


@dataclass(frozen=True, slots=True)
class _Signed:
    """Where a signature sits and what it must cover: the seller's in an `HDon`
    (`DSCKS/NBan`, over `DLHDon`) or the taxpayer's on a cash-register package (`CKSNNT`,
    over `DLieu`, vn-einvoice §6.3); the rule codes its failures are reported under."""

    signer: str
    container: tuple[str, ...]
    data: str
    missing: str
    invalid: str
    untrusted: str
    tax_id_mismatch: str


_SELLER = _Signed(
    "seller's",
    ("DSCKS", "NBan"),
    "DLHDon",
    "vn.signature.missing",
    "vn.signature.invalid",
    "vn.signature.untrusted",
    "vn.signature.tax_id_mismatch",
)
_PACKAGE = _Signed(
    "taxpayer's package",
    ("CKSNNT",),
    "DLieu",
    "vn.signature.package_missing",
    "vn.signature.package_invalid",
    "vn.signature.package_invalid",
    "vn.signature.package_invalid",
)


def _verify(
    hdon_xml: bytes,
    seller_tax_id: str | None,
    series: str | None,
    anchors: TrustAnchors,
    now: datetime,
    signed: _Signed = _SELLER,
) -> None:
    """Raise `_Rejected` for the first failure, in the order given in the module docstring."""
    try:
        root = etree.fromstring(hdon_xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise _Rejected(signed.invalid, f"XML unreadable: {_short(exc)}") from None
    namespace = etree.QName(root).namespace  # none today; the legacy 2014 one may appear
    prefix = f"{{{namespace}}}" if namespace else ""
    location = "./" + "".join(f"{prefix}{part}/" for part in signed.container)
    where = "/".join(signed.container)
    signatures = root.findall(f"{location}ds:Signature", _NS)
    if not signatures:
        if signed is _SELLER and is_cash_register_series(series):
            return
        raise _Rejected(signed.missing)
    if len(signatures) > 1:
        raise _Rejected(signed.invalid, f"more than one signature in {where}")
    signature = signatures[0]
    data = [c for c in root if _local(c) == signed.data]
    data_id = data[0].get(_ID) if len(data) == 1 else None
    if not data_id:
        raise _Rejected(
            signed.invalid,
            f"exactly one {signed.data}, with an Id for the signature, is needed",
        )
    value = signature.find("ds:SignatureValue", _NS)
    if value is not None and not (value.text or "").strip():
        # signxml would hand the missing text to b64decode, whose TypeError means the same
        raise _Rejected(signed.invalid, "the SignatureValue is empty")
    references = signature.findall("ds:SignedInfo/ds:Reference", _NS)
    for reference in references:
        for transform in reference.findall("ds:Transforms/ds:Transform", _NS):
            if transform.get("Algorithm") not in _WHOLE_ELEMENT_TRANSFORMS:
                raise _Rejected(
                    signed.invalid, f"transform not accepted: {transform.get('Algorithm')}"
                )
    leaf, intermediates = _leaf_first(_certificates(signature, signed.invalid))
    uris = {r.get("URI") or "" for r in references}
    when = min(
        _signed_signing_time(signature, uris)
        or (_issue_time(data[0]) if signed is _SELLER else None)
        or now,
        now,
    )

    config = SignatureConfiguration(
        location=location,
        expect_references=True,  # DLHDon and SigningTime; each one's digest is checked
        signature_methods=SIGNATURE_METHODS,
        digest_algorithms=DIGEST_ALGORITHMS,
        # A reference without a C14N transform (the seller's DLHDon reference in real
        # invoices) is canonicalised with REC-xml-c14n-20010315, as §5.8 states; signxml's
        # own default would be C14N 1.1.
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
        verification_time=when,
    )
    try:
        verified: Any = XMLVerifier().verify(
            hdon_xml, x509_cert=leaf, id_attribute=_ID, expect_config=config
        )
    except InvalidCertificate:  # signxml checked the leaf's validity period at `when`
        raise _Rejected(
            signed.untrusted,
            (
                f"certificate valid {leaf.not_valid_before_utc.isoformat()} to "
                f"{leaf.not_valid_after_utc.isoformat()}, signed at {when.isoformat()}"
            ),
        ) from None
    except (SignXMLException, etree.LxmlError, ValueError) as exc:
        # signxml's InvalidSignature/InvalidDigest/InvalidInput, schema errors of the
        # ds:Signature, and malformed base64 all mean: this signature does not verify.
        raise _Rejected(signed.invalid, _short(exc)) from None
    results = verified if isinstance(verified, list) else [verified]
    signed_refs = results[0].signature_xml.findall("ds:SignedInfo/ds:Reference", _NS)
    covers_data = any(
        ref.get("URI") == f"#{data_id}"
        and result.signed_xml is not None
        and _local(result.signed_xml) == signed.data
        and result.signed_xml.get(_ID) == data_id
        for ref, result in zip(signed_refs, results, strict=True)
    )
    if not covers_data:
        raise _Rejected(
            signed.invalid,
            f"no reference of the {signed.signer} signature covers {signed.data} (#{data_id})",
        )

    assert anchors.store is not None
    verifier = (
        PolicyBuilder()
        .store(anchors.store)
        .time(when)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise _Rejected(
            signed.untrusted,
            f"no path to a trust anchor at {when.isoformat()} ({_short(exc)})",
        ) from None

    if seller_tax_id:
        uids = _uid_values(leaf)
        if not any(_uid_names(uid, seller_tax_id) for uid in uids):
            raise _Rejected(
                signed.tax_id_mismatch, f"certificate UID {', '.join(uids) or '(none)'}"
            )


def check_seller_signature(
    hdon_xml: bytes,
    *,
    seller_tax_id: str | None,
    series: str | None,
    anchors: TrustAnchors,
    cfg: RuleConfig,
    now: datetime | None = None,
) -> list[Violation]:
    """Violations of the seller-signature rules for one `HDon` (empty when it passes, when
    no anchors are configured, or when the rule is switched off)."""
    if not anchors.enabled:
        return []
    try:
        _verify(hdon_xml, seller_tax_id, series, anchors, now or datetime.now(UTC))
    except _Rejected as rejected:
        violation = cfg.violation(rejected.code, "signature", rejected.detail)
        return [] if violation.severity is Severity.OFF else [violation]
    return []


def seller_signature_violations(
    package: Package,
    originals: Mapping[int, bytes],
    anchors: TrustAnchors,
    cfg: RuleConfig,
    now: datetime | None = None,
) -> dict[int, list[Violation]]:
    """Per invoice index, the violations of `check_seller_signature`, for
    `Intake.ingest(..., extra_violations=...)`. CPU-bound: call it off the event loop.
    A package without originals (JSON) has no signature to check: its Vietnamese invoices
    break `vn.signature.json_unsigned` (`unsigned_json_violations`)."""
    if not anchors.enabled:
        return {}
    if not originals:
        return unsigned_json_violations(package, anchors, cfg)
    found: dict[int, list[Violation]] = {}
    for index, hdon_xml in originals.items():
        raw = package.invoices[index] if 0 <= index < len(package.invoices) else {}
        seller = raw.get("seller_tax_id") if isinstance(raw, dict) else None
        series = raw.get("series") if isinstance(raw, dict) else None
        violations = check_seller_signature(
            hdon_xml,
            seller_tax_id=seller if isinstance(seller, str) else None,
            series=series if isinstance(series, str) else None,
            anchors=anchors,
            cfg=cfg,
            now=now,
        )
        if violations:
            found[index] = violations
    return found


def unsigned_json_violations(
    package: Package, anchors: TrustAnchors, cfg: RuleConfig
) -> dict[int, list[Violation]]:
    """With trust anchors configured, each Vietnamese invoice of a JSON package breaks
    `vn.signature.json_unsigned` (vn-einvoice §5.8): JSON carries no seller signature, so
    accepting it would let anyone bypass the signature rules by posting JSON. Chinese
    invoices carry no XML signature in either format and are not concerned."""
    if not anchors.enabled:
        return {}
    violation = cfg.violation("vn.signature.json_unsigned", "signature")
    if violation.severity is Severity.OFF:
        return {}
    return {
        index: [violation]
        for index, raw in enumerate(package.invoices)
        if isinstance(raw, dict) and raw.get("scheme") == "vn"
    }


def check_package_signature(
    tdiep_xml: bytes,
    *,
    taxpayer_tax_id: str | None,
    anchors: TrustAnchors,
    cfg: RuleConfig,
    now: datetime | None = None,
) -> list[Violation]:
    """The taxpayer's signature on a cash-register package (vn-einvoice §6.3: batches
    "signed once by the taxpayer (`CKSNNT`)"): `TDiep/CKSNNT/Signature` over `DLieu`, by a
    certificate that chains to a trust anchor and names the taxpayer's MST, checked by the
    same machinery as the seller's signature. Empty without anchors or with the rules off."""
    if not anchors.enabled:
        return []
    try:
        _verify(tdiep_xml, taxpayer_tax_id, None, anchors, now or datetime.now(UTC), _PACKAGE)
    except _Rejected as rejected:
        violation = cfg.violation(rejected.code, "package_signature", rejected.detail)
        return [] if violation.severity is Severity.OFF else [violation]
    return []
