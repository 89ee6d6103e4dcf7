"""The seller's XML signature (indexer/signature.py, docs/vn-rules.md#58-seller-signature)
against a CA the tests make: valid, tampered, missing, cash register, untrusted, expired,
other MST, signatures over the wrong thing, the SHA-1 allowance, and the off mode without
anchors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from indexer.package import package_from_json
from indexer.rules import RuleConfig, Severity, Violation
from indexer.signature import (
    TrustAnchorError,
    TrustAnchors,
    check_package_signature,
    check_seller_signature,
    is_cash_register_series,
    seller_signature_violations,
)
from tests.factories import SELLER, SELLER_2, vn_invoice
from tests.pki import Pki, make_pki
from tests.xml_factories import DS, hdon, sign_hdon

NOW = datetime(2026, 11, 23, tzinfo=UTC)
Found = list[tuple[str, str | None]]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def anchors(pki: Pki) -> TrustAnchors:
    return TrustAnchors.from_pem(pki.anchors_pem, "test root")


Check = Callable[..., Found]


@pytest.fixture
def check(anchors: TrustAnchors) -> Check:
    """Rule codes and details for one HDon element (seller and series of `vn_invoice`)."""

    def run(
        element: etree._Element,
        *,
        seller: str | None = SELLER,
        series: str = "C22TAA",
        cfg: RuleConfig | None = None,
        trust: TrustAnchors | None = None,
    ) -> Found:
        found = check_seller_signature(
            etree.tostring(element),
            seller_tax_id=seller,
            series=series,
            anchors=trust or anchors,
            cfg=cfg or RuleConfig(),
            now=NOW,
        )
        assert all(v.field == "signature" and v.severity is Severity.ERROR for v in found)
        return [(v.code, v.detail) for v in found]

    return run


def codes(found: Found) -> list[str]:
    return [code for code, _ in found]


def signed(pki: Pki, invoice: etree._Element | None = None, **options: object) -> etree._Element:
    return sign_hdon(
        hdon(vn_invoice(1)) if invoice is None else invoice, pki.seller_key, [pki.leaf()], **options
    )  # type: ignore[arg-type]


# --- accepted ------------------------------------------------------------------------------


def test_valid_rsa_sha256_signature_passes(pki: Pki, check: Check) -> None:
    element = signed(pki)
    method = element.find(f".//{{{DS}}}SignatureMethod")
    assert method is not None
    assert method.get("Algorithm", "").endswith("rsa-sha256")
    assert check(element) == []


def test_rsa_sha1_signature_passes_as_the_spec_requires(pki: Pki, check: Check) -> None:
    element = signed(pki, algorithm="rsa-sha1")
    digest = element.find(f".//{{{DS}}}DigestMethod")
    assert digest is not None
    assert digest.get("Algorithm", "").endswith("#sha1")
    assert check(element) == []


def test_bare_tax_id_in_the_certificate_uid_is_accepted(pki: Pki, check: Check) -> None:
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(SELLER)])
    assert check(element) == []


def test_certificate_expired_today_but_valid_at_signing_passes(pki: Pki, check: Check) -> None:
    cert = pki.leaf(
        not_before=datetime(2021, 1, 1, tzinfo=UTC), not_after=datetime(2023, 1, 1, tzinfo=UTC)
    )
    assert cert.not_valid_after_utc < NOW
    assert check(sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [cert])) == []


def test_the_buyer_signature_beside_it_is_not_the_one_verified(pki: Pki, check: Check) -> None:
    """DSCKS may hold NMua and CQT signatures too; only DSCKS/NBan/Signature is the seller's,
    even when another comes first in the document. The buyer's here is by another MST (and
    broken by renaming its object): verifying it would fail, so it must not be the one."""
    buyer_signed = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(f"MST:{SELLER_2}")])
    buyer_signature = buyer_signed.find(f"DSCKS/NBan/{{{DS}}}Signature")
    assert buyer_signature is not None
    for element_with_id in buyer_signature.iter(f"{{{DS}}}Object"):
        element_with_id.set("Id", "SigningTime-buyer")
    element = signed(pki)
    dscks = element.find("DSCKS")
    assert dscks is not None
    dscks.insert(0, etree.Element("NMua"))
    dscks[0].append(buyer_signature)
    assert [e.tag for e in dscks] == ["NMua", "NBan"]
    assert check(element) == []


# --- missing, cash register ----------------------------------------------------------------


def test_missing_signature_is_reported(check: Check) -> None:
    assert check(hdon(vn_invoice(1))) == [("vn.signature.missing", None)]


def test_cash_register_invoice_needs_no_signature(check: Check) -> None:
    element = hdon(vn_invoice(1, series="C22MAA", authority_code="M1-22-ABCDE-00000000001"))
    assert check(element, series="C22MAA") == []
    assert check(element, series="1C22MAA") == []  # template digit wrongly prefixed (§1.2)


def test_a_signature_present_on_a_cash_register_invoice_is_still_verified(
    pki: Pki, check: Check
) -> None:
    element = signed(pki, hdon(vn_invoice(1, series="C22MAA")))
    assert check(element, series="C22MAA") == []
    total = element.find(".//TgTTTBSo")
    assert total is not None
    total.text = "1"
    assert codes(check(element, series="C22MAA")) == ["vn.signature.invalid"]


@pytest.mark.parametrize(
    ("series", "cash"),
    [
        ("C22MAA", True),
        ("1C22MAA", True),
        ("C22TAA", False),
        ("K22TAA", False),
        ("", False),
        (None, False),
        ("C22M", False),
    ],
)
def test_cash_register_series(series: str | None, cash: bool) -> None:
    assert is_cash_register_series(series) is cash


# --- invalid -------------------------------------------------------------------------------


def test_amount_edited_after_signing_is_invalid(pki: Pki, check: Check) -> None:
    element = signed(pki)
    total = element.find("DLHDon/NDHDon/TToan/TgTTTBSo")
    assert total is not None
    assert total.text == "1100000"
    total.text = "110000"
    assert check(element) == [("vn.signature.invalid", "Digest mismatch for reference 0 (#data)")]


def test_signature_copied_from_another_invoice_is_invalid(pki: Pki, check: Check) -> None:
    donor = signed(pki)
    element = hdon(vn_invoice(2))
    nban, signature = element.find("DSCKS/NBan"), donor.find(f"DSCKS/NBan/{{{DS}}}Signature")
    assert nban is not None
    assert signature is not None
    nban.append(signature)
    assert codes(check(element)) == ["vn.signature.invalid"]


def test_signing_time_edited_after_signing_is_invalid(pki: Pki, check: Check) -> None:
    element = signed(pki)
    when = element.find(".//SigningTime")
    assert when is not None
    when.text = "2022-05-16T09:31:00"
    assert check(element) == [
        ("vn.signature.invalid", "Digest mismatch for reference 1 (#SigningTime-1)")
    ]


@pytest.mark.parametrize(
    "references",
    [["#code", "#SigningTime-1"], ["#SigningTime-1"]],
    ids=["over MCCQT", "over SigningTime only"],
)
def test_signature_whose_references_miss_dlhdon_is_invalid(
    pki: Pki, check: Check, references: list[str]
) -> None:
    element = signed(pki, references=references)
    assert check(element) == [
        ("vn.signature.invalid", "no reference of the seller's signature covers DLHDon (#data)")
    ]


def test_forged_dlhdon_in_front_of_the_signed_one_is_invalid(pki: Pki, check: Check) -> None:
    """Signature wrapping: the parser reads the first DLHDon, the signature covers another."""
    element = signed(pki)
    forged = etree.fromstring(etree.tostring(hdon(vn_invoice(1, total_amount="1"))))[0]
    del forged.attrib["Id"]
    element.insert(0, forged)
    assert codes(check(element)) == ["vn.signature.invalid"]


def test_dlhdon_without_an_id_is_invalid(pki: Pki, check: Check) -> None:
    element = signed(pki)
    del element[0].attrib["Id"]
    assert codes(check(element)) == ["vn.signature.invalid"]


def test_algorithm_outside_the_accepted_list_is_invalid(pki: Pki, check: Check) -> None:
    found = check(signed(pki, algorithm="rsa-sha512"))
    assert codes(found) == ["vn.signature.invalid"]
    assert "RSA_SHA512 forbidden by configuration" in (found[0][1] or "")


def test_a_transform_that_could_digest_part_of_dlhdon_is_refused(pki: Pki, check: Check) -> None:
    element = signed(pki)
    transforms = element.find(f".//{{{DS}}}Reference/{{{DS}}}Transforms")
    assert transforms is not None
    etree.SubElement(
        transforms, f"{{{DS}}}Transform", Algorithm="http://www.w3.org/2000/09/xmldsig#base64"
    )
    assert check(element) == [
        ("vn.signature.invalid", "transform not accepted: http://www.w3.org/2000/09/xmldsig#base64")
    ]


def test_two_seller_signatures_are_invalid(pki: Pki, check: Check) -> None:
    element = signed(pki)
    nban = element.find("DSCKS/NBan")
    assert nban is not None
    nban.append(etree.fromstring(etree.tostring(nban[0])))
    assert codes(check(element)) == ["vn.signature.invalid"]


def test_signature_without_certificate_is_invalid(pki: Pki, check: Check) -> None:
    element = signed(pki)
    key_info = element.find(f".//{{{DS}}}KeyInfo")
    assert key_info is not None
    key_info.getparent().remove(key_info)  # type: ignore[union-attr]
    assert check(element) == [
        ("vn.signature.invalid", "no X509Certificate in the signature's KeyInfo")
    ]


@pytest.mark.parametrize("text", [None, "  "], ids=["no text", "blank"])
def test_an_empty_signature_value_is_invalid_not_a_crash(
    pki: Pki, check: Check, text: str | None
) -> None:
    """Found by test_hostile_values: signxml passed the missing text to b64decode (TypeError)."""
    element = signed(pki)
    value = element.find(f".//{{{DS}}}SignatureValue")
    assert value is not None
    value.text = text
    assert check(element) == [("vn.signature.invalid", "the SignatureValue is empty")]


# --- untrusted -----------------------------------------------------------------------------


def test_certificate_from_an_untrusted_ca_is_untrusted(pki: Pki, check: Check) -> None:
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(trusted=False)])
    found = check(element)
    assert codes(found) == ["vn.signature.untrusted"]
    assert "no path to a trust anchor at 2022-05-15T09:31:00+07:00" in (found[0][1] or "")


def test_untrusted_ca_listed_as_intermediate_does_not_help(pki: Pki, check: Check) -> None:
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(trusted=False), pki.rogue])
    assert codes(check(element)) == ["vn.signature.untrusted"]


def test_certificate_expired_before_signing_is_untrusted(pki: Pki, check: Check) -> None:
    cert = pki.leaf(not_after=datetime(2021, 12, 31, tzinfo=UTC))
    found = check(sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [cert]))
    assert found == [
        (
            "vn.signature.untrusted",
            "certificate valid 2020-01-01T00:00:00+00:00 to 2021-12-31T00:00:00+00:00, "
            "signed at 2022-05-15T09:31:00+07:00",
        )
    ]


def test_certificate_not_yet_valid_at_signing_is_untrusted(pki: Pki, check: Check) -> None:
    cert = pki.leaf(not_before=datetime(2023, 1, 1, tzinfo=UTC))
    assert codes(check(sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [cert]))) == [
        "vn.signature.untrusted"
    ]


def test_without_signing_time_the_issue_date_decides(pki: Pki, check: Check) -> None:
    """NLap 2022-05-15T09:30 (Vietnam time): a certificate ending the day before fails."""
    ended = pki.leaf(not_after=datetime(2022, 5, 14, tzinfo=UTC))
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [ended], signing_time=None)
    assert element.find(".//SigningTime") is None
    assert codes(check(element)) == ["vn.signature.untrusted"]
    valid = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf()], signing_time=None)
    assert check(valid) == []


def test_an_unsigned_signing_time_cannot_rescue_an_expired_certificate(
    pki: Pki, check: Check
) -> None:
    """The SigningTime object is present but no reference covers it: the signer never
    vouched for it, so NLap (signed, inside DLHDon) decides."""
    ended = pki.leaf(not_after=datetime(2022, 5, 14, tzinfo=UTC))
    element = sign_hdon(
        hdon(vn_invoice(1)),
        pki.seller_key,
        [ended],
        signing_time="2021-06-01T10:00:00",
        references=["#data"],
    )
    assert codes(check(element)) == ["vn.signature.untrusted"]


def test_a_future_signing_time_is_judged_now(pki: Pki, check: Check) -> None:
    """A certificate valid only from 2030 cannot be brought in by claiming to sign then."""
    future = pki.leaf(
        not_before=datetime(2030, 1, 1, tzinfo=UTC), not_after=datetime(2031, 1, 1, tzinfo=UTC)
    )
    element = sign_hdon(
        hdon(vn_invoice(1, issued_at="2030-06-01T09:00:00+07:00")),
        pki.seller_key,
        [future],
        signing_time="2030-06-01T09:00:00",
    )
    assert codes(check(element)) == ["vn.signature.untrusted"]


# --- tax id --------------------------------------------------------------------------------


def test_certificate_of_another_mst_is_a_tax_id_mismatch(pki: Pki, check: Check) -> None:
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(f"MST:{SELLER_2}")])
    assert check(element) == [("vn.signature.tax_id_mismatch", f"certificate UID MST:{SELLER_2}")]


def test_certificate_without_uid_is_a_tax_id_mismatch(pki: Pki, check: Check) -> None:
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(None)])
    assert check(element) == [("vn.signature.tax_id_mismatch", "certificate UID (none)")]


def test_branch_tax_id_compares_normalised(pki: Pki, check: Check) -> None:
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf("MST:0100109106001")])
    assert check(element, seller="0100109106-001") == []


def test_a_forged_certificate_reports_trust_not_tax_id(pki: Pki, check: Check) -> None:
    element = sign_hdon(
        hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(f"MST:{SELLER_2}", trusted=False)]
    )
    assert codes(check(element)) == ["vn.signature.untrusted"]


# --- configuration -------------------------------------------------------------------------


def test_without_anchors_there_are_no_signature_checks(pki: Pki, check: Check) -> None:
    off = TrustAnchors.none()
    assert not off.enabled
    assert check(hdon(vn_invoice(1)), trust=off) == []
    tampered = signed(pki)
    tampered[0].set("Id", "changed")
    assert check(tampered, trust=off) == []


def test_a_rule_switched_off_reports_nothing(check: Check) -> None:
    cfg = RuleConfig(severity={"vn.signature.missing": Severity.OFF})
    assert check(hdon(vn_invoice(1)), cfg=cfg) == []


def test_a_rule_switched_to_warning_is_a_warning(anchors: TrustAnchors) -> None:
    cfg = RuleConfig(severity={"vn.signature.missing": Severity.WARNING})
    found = check_seller_signature(
        etree.tostring(hdon(vn_invoice(1))),
        seller_tax_id=SELLER,
        series="C22TAA",
        anchors=anchors,
        cfg=cfg,
        now=NOW,
    )
    assert [(v.code, v.severity) for v in found] == [("vn.signature.missing", Severity.WARNING)]
    assert found[0].message_vi
    assert found[0].spec == "vn-einvoice §5.8, §7"


def test_package_violations_are_keyed_by_invoice_index(pki: Pki, anchors: TrustAnchors) -> None:
    invoices = [vn_invoice(n) for n in (1, 2, 3)]
    package = package_from_json(
        {"package_id": "P", "sender": "0101300842", "declared_count": 3, "invoices": invoices},
        max_items=10,
    )
    originals = {
        0: etree.tostring(signed(pki, hdon(invoices[0]))),
        1: etree.tostring(hdon(invoices[1])),
        2: etree.tostring(
            sign_hdon(hdon(invoices[2]), pki.seller_key, [pki.leaf(f"MST:{SELLER_2}")])
        ),
    }
    found = seller_signature_violations(package, originals, anchors, RuleConfig(), now=NOW)
    assert {i: [v.code for v in vs] for i, vs in found.items()} == {
        1: ["vn.signature.missing"],
        2: ["vn.signature.tax_id_mismatch"],
    }
    assert seller_signature_violations(package, originals, TrustAnchors.none(), RuleConfig()) == {}


# --- trust anchors from files --------------------------------------------------------------


def _pem(pki: Pki, *certs: str) -> bytes:
    chosen = {"root": pki.root, "rogue": pki.rogue}
    return b"".join(chosen[c].public_bytes(serialization.Encoding.PEM) for c in certs)


def test_anchors_from_a_file_with_several_certificates(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "anchors.pem"
    path.write_bytes(_pem(pki, "root", "rogue"))
    loaded = TrustAnchors.load(path)
    assert loaded.enabled
    assert loaded.certificates == (pki.root, pki.rogue)
    assert loaded.source == str(path)


def test_anchors_from_a_directory_read_pem_crt_and_cer(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "b-root.crt").write_bytes(_pem(pki, "root"))
    (tmp_path / "a-rogue.pem").write_bytes(_pem(pki, "rogue"))
    (tmp_path / "README.txt").write_text("not a certificate")
    assert TrustAnchors.load(tmp_path).certificates == (pki.rogue, pki.root)


def test_anchors_that_make_the_signature_trusted_are_what_counts(
    pki: Pki, tmp_path: Path, check: Check
) -> None:
    path = tmp_path / "rogue.pem"
    path.write_bytes(_pem(pki, "rogue"))
    element = sign_hdon(hdon(vn_invoice(1)), pki.seller_key, [pki.leaf(trusted=False)])
    assert check(element, trust=TrustAnchors.load(path)) == []
    assert codes(check(signed(pki), trust=TrustAnchors.load(path))) == ["vn.signature.untrusted"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"", "no PEM certificate found"),
        (
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            "not PEM certificates",
        ),
    ],
)
def test_unusable_anchor_files_are_refused(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "anchors.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TrustAnchorError, match=message):
        TrustAnchors.load(path)


def test_an_empty_anchor_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrustAnchorError, match="no PEM certificate found"):
        TrustAnchors.load(tmp_path)


# --- issue 17 item 4: JSON invoices bypassed the signature rules ---------------------------


def test_a_json_vn_invoice_is_refused_when_anchors_are_configured(anchors: TrustAnchors) -> None:
    """vn-einvoice §5.8: with trust anchors the seller's signature is checked; JSON carries
    none, so a JSON Vietnamese invoice breaks `vn.signature.json_unsigned` (a Chinese one,
    which has no XML signature in any format, does not)."""
    from tests.factories import cn_invoice

    package = package_from_json(
        {
            "package_id": "PKG-JSON",
            "sender": "0101234567",
            "declared_count": 2,
            "invoices": [vn_invoice(1), cn_invoice()],
            "notices": [],
        }
    )
    found = seller_signature_violations(package, {}, anchors, RuleConfig(), now=NOW)
    assert {i: [(v.code, v.severity) for v in vs] for i, vs in found.items()} == {
        0: [("vn.signature.json_unsigned", Severity.ERROR)]
    }
    assert seller_signature_violations(package, {}, TrustAnchors.none(), RuleConfig()) == {}
    lenient = RuleConfig(severity={"vn.signature.json_unsigned": Severity.WARNING})
    [warning] = seller_signature_violations(package, {}, anchors, lenient)[0]
    assert warning.severity is Severity.WARNING
    off = RuleConfig(severity={"vn.signature.json_unsigned": Severity.OFF})
    assert seller_signature_violations(package, {}, anchors, off) == {}


# --- issue 17 item 4: the cash-register package signature (CKSNNT, vn-einvoice §6.3) --------


def _signed_package(pki: Pki, *, trusted: bool = True, tamper: bool = False) -> bytes:
    """A message-206 TDiep whose `DLieu` the taxpayer signs once, in `TDiep/CKSNNT` (§6.3)."""
    from tests.xml_factories import signed_cash_register_package

    return signed_cash_register_package(
        [vn_invoice(1, series="C22MAA", authority_code=None)],
        pki.seller_key,
        [pki.leaf(trusted=trusted)],
        tamper=tamper,
    )


def _package_codes(found: list[Violation]) -> list[str]:
    return [v.code for v in found]


def test_a_signed_cash_register_package_passes(pki: Pki, anchors: TrustAnchors) -> None:
    body = _signed_package(pki)
    found = check_package_signature(
        body, taxpayer_tax_id=SELLER, anchors=anchors, cfg=RuleConfig(), now=NOW
    )
    assert found == []


@pytest.mark.parametrize(
    ("options", "tax_id", "code"),
    [
        ({"tamper": True}, SELLER, "vn.signature.package_invalid"),
        ({"trusted": False}, SELLER, "vn.signature.package_invalid"),
        ({}, SELLER_2, "vn.signature.package_invalid"),
    ],
    ids=["changed after signing", "untrusted CA", "another taxpayer"],
)
def test_a_bad_package_signature_is_refused(
    pki: Pki, anchors: TrustAnchors, options: dict[str, bool], tax_id: str, code: str
) -> None:
    found = check_package_signature(
        _signed_package(pki, **options),
        taxpayer_tax_id=tax_id,
        anchors=anchors,
        cfg=RuleConfig(),
        now=NOW,
    )
    assert _package_codes(found) == [code]
    assert found[0].severity is Severity.ERROR


def test_an_unsigned_cash_register_package_is_reported(anchors: TrustAnchors) -> None:
    """Unconfirmed (§6.3 observed in one implementation): a warning by default."""
    from tests.xml_factories import xml_package

    body = xml_package([vn_invoice(1, series="C22MAA", authority_code=None)])
    found = check_package_signature(
        body, taxpayer_tax_id=SELLER, anchors=anchors, cfg=RuleConfig(), now=NOW
    )
    assert [(v.code, v.severity) for v in found] == [
        ("vn.signature.package_missing", Severity.WARNING)
    ]
    assert check_package_signature(
        body, taxpayer_tax_id=SELLER, anchors=TrustAnchors.none(), cfg=RuleConfig()
    ) == []
