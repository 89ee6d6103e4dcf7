"""Build Vietnamese XML packages (TDiep envelope, HDon invoices, 04/SS notices) from the same
dicts as `tests.factories`, so XML and JSON tests describe the same invoices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from lxml.builder import E
from signxml.algorithms import CanonicalizationMethod
from signxml.signer import XMLSigner


def _opt(tag: str, value: Any) -> list[etree._Element]:
    return [] if value is None else [E(tag, str(value))]


def hdon(inv: dict[str, Any], *, misplace_code: bool = False) -> etree._Element:
    issued = inv.get("issued_at")
    nlap = (
        issued[:10]
        if issued and issued.endswith("T00:00:00+07:00")
        else (issued[:19] if issued else None)
    )
    general = E.TTChung(
        E.PBan("2.0.1"),
        E.THDon("Hóa đơn giá trị gia tăng"),
        *_opt("KHMSHDon", inv.get("template")),
        *_opt("KHHDon", inv.get("series")),
        *_opt("SHDon", inv.get("number")),
        *_opt("NLap", nlap),
        *_opt("DVTTe", inv.get("currency")),
    )
    if inv.get("original"):
        original = inv["original"]
        general.append(
            E.TTHDLQuan(
                E.TCHDon("1" if inv.get("kind") == "replacement" else "2"),
                E.LHDCLQuan("1"),
                E.KHMSHDCLQuan(original["template"]),
                E.KHHDCLQuan(original["series"]),
                E.SHDCLQuan(str(original["number"])),
                E.NLHDCLQuan("2022-05-01"),
            )
        )
    if misplace_code and inv.get("authority_code"):
        general.append(E.MCCQT(inv["authority_code"]))
    seller = E.NBan(
        *_opt("Ten", inv.get("seller_name")),
        *_opt("MST", inv.get("seller_tax_id")),
        E.DChi("Số 1 Tràng Tiền, Hà Nội"),
    )
    buyer = E.NMua(
        *_opt("Ten", inv.get("buyer_name")),
        *_opt("MST", inv.get("buyer_tax_id")),
        E.DChi("Quận 1, TP Hồ Chí Minh"),
    )
    totals = E.TToan(
        *_opt("TgTCThue", inv.get("amount_before_tax")),
        *_opt("TgTThue", inv.get("tax_amount")),
        *_opt("TgTTTBSo", inv.get("total_amount")),
        E.TgTTTBChu("Một triệu"),
    )
    lines = E.DSHHDVu(
        E.HHDVu(
            E.TChat("1"),
            E.STT("1"),
            E.THHDVu("Dịch vụ tư vấn"),
            E.ThTien(str(inv.get("amount_before_tax", "0"))),
            E.TSuat("10%"),
        )
    )
    data = E.DLHDon(general, E.NDHDon(seller, buyer, lines, totals), Id="data")
    root = E.HDon(data)
    if inv.get("authority_code") and not misplace_code:
        root.append(E.MCCQT(inv["authority_code"], Id="code"))
    root.append(E.DSCKS(E.NBan()))
    return root


def tbao(seller: str, rows: list[dict[str, Any]]) -> etree._Element:
    listed = [
        E.HDon(
            E.STT(str(n)),
            E.KHMSHDon(r["template"]),
            E.KHHDon(r["series"]),
            E.SHDon(str(r["number"])),
            E.Ngay("2022-05-15"),
            E.LADHDDT("1"),
            E.TCTBao(r.get("nature", "1")),
            E.LDo(r.get("reason", "Sai người mua")),
        )
        for n, r in enumerate(rows, start=1)
    ]
    return E.TBao(
        E.DLTBao(
            E.PBan("2.0.1"),
            E.MSo("04/SS-HĐĐT"),
            E.Loai("1"),
            E.MST(seller),
            E.So("04SS-2022-07"),
            E.DSHDon(*listed),
        )
    )


def xml_package(
    invoices: list[dict[str, Any]],
    *,
    package_id: str = "V0101300842AB12CD",
    sender: str = "0101300842",
    count: int | None = None,
    notices: list[etree._Element] | None = None,
    misplace_code: bool = False,
) -> bytes:
    notices = notices or []
    n_notices = sum(1 for n in notices for row in n.iter("HDon") if row.findtext("TCTBao") == "1")
    seller = invoices[0].get("seller_tax_id", "") if invoices else ""
    envelope = E.TDiep(
        E.TTChung(
            E.PBan("2.0.1"),
            E.MNGui(sender),
            E.MNNhan("TCT"),
            E.MLTDiep("206"),
            E.MTDiep(package_id),
            E.MST(seller),
            E.SLuong(str(len(invoices) + n_notices if count is None else count)),
        ),
        E.DLieu(*[hdon(i, misplace_code=misplace_code) for i in invoices], *notices),
    )
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


# --- seller signatures (docs/vn-rules.md#58-seller-signature) -----------------------------

DS = "http://www.w3.org/2000/09/xmldsig#"
#: Shaped like a real seller signature: default ds namespace, a SigningTime object whose
#: SignatureProperties are in no namespace. signxml fills in SignedInfo, SignatureValue, KeyInfo.
_SIGNATURE_TEMPLATE = (
    f'<Signature xmlns="{DS}" Id="placeholder"><Object Id="SigningTime-1">'
    '<SignatureProperties xmlns=""><SignatureProperty Target="#seller-signature">'
    "<SigningTime>{signing_time}</SigningTime></SignatureProperty></SignatureProperties>"
    "</Object></Signature>"
)


class _LegacySigner(XMLSigner):
    """signxml refuses to create SHA-1 signatures; real 2025 invoices still carry rsa-sha1
    (spec §5.8), so the tests must be able to make one."""

    def check_deprecated_methods(self) -> None:
        return None


def sign_hdon(
    hdon_element: etree._Element,
    key: rsa.RSAPrivateKey,
    certs: list[x509.Certificate],
    *,
    algorithm: str = "rsa-sha256",
    signing_time: str | None = "2022-05-15T09:31:00",
    references: list[str] | None = None,
) -> etree._Element:
    """A signed copy of `hdon_element`: enveloped XML-DSig in DSCKS/NBan, references
    `#data` (DLHDon) and `#SigningTime-1`, C14N 1.0 with no C14N transform, as real invoices
    do. `signing_time=None` leaves the SigningTime object out."""
    hdon_copy = etree.fromstring(etree.tostring(hdon_element))
    template = etree.fromstring(_SIGNATURE_TEMPLATE.format(signing_time=signing_time or ""))
    if signing_time is None:
        template.remove(template[0])
    seller = hdon_copy.find("DSCKS/NBan")
    assert seller is not None
    seller.append(template)
    if references is None:
        references = ["#data", "#SigningTime-1"] if signing_time else ["#data"]
    digest = algorithm.rpartition("-")[2]
    signer_class = _LegacySigner if digest == "sha1" else XMLSigner
    signer = signer_class(
        signature_algorithm=algorithm,
        digest_algorithm=digest,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    signed = signer.sign(
        hdon_copy,
        key=key,
        cert=list(certs),
        reference_uri=references,
        exclude_c14n_transform_element=True,
    )
    signature = signed.find(f"DSCKS/NBan/{{{DS}}}Signature")
    assert signature is not None
    signature.set("Id", "seller-signature")
    for obj in signature.findall(f"{{{DS}}}Object"):  # the schema wants Object last
        signature.remove(obj)
        signature.append(obj)
    return signed


def signed_xml_package(
    invoices: list[dict[str, Any]],
    sign: Callable[[etree._Element, dict[str, Any]], etree._Element],
    **options: Any,
) -> bytes:
    """`xml_package(invoices, **options)` with each HDon replaced by `sign(hdon, invoice)`.

    Spliced as bytes: moving a signed element into another lxml document would let lxml drop
    namespace declarations it finds redundant, which changes the inclusive C14N of SignedInfo
    and breaks the signature (a sender's software copies bytes, too)."""
    body = xml_package(invoices, **options)
    envelope = etree.fromstring(body)
    for element, invoice in zip(envelope.iterfind("DLieu/HDon"), invoices, strict=True):
        unsigned = etree.tostring(element, encoding="utf-8")
        assert body.count(unsigned) == 1
        body = body.replace(unsigned, etree.tostring(sign(element, invoice), encoding="utf-8"))
    return body


def signed_cash_register_package(
    invoices: list[dict[str, Any]],
    key: rsa.RSAPrivateKey,
    certs: list[x509.Certificate],
    *,
    tamper: bool = False,
    **options: Any,
) -> bytes:
    """`xml_package(invoices, **options)` (message 206) whose `DLieu` (Id `dlieu`) the taxpayer
    signs once, enveloped in `TDiep/CKSNNT` (vn-einvoice §6.3: "signed once by the taxpayer
    (`CKSNNT`)"). `tamper` changes the first invoice's number after signing."""
    envelope = etree.fromstring(xml_package(invoices, **options))
    data = envelope.find("DLieu")
    assert data is not None
    data.set("Id", "dlieu")
    holder = etree.SubElement(envelope, "CKSNNT")
    holder.append(etree.fromstring(f'<Signature xmlns="{DS}" Id="placeholder"/>'))
    signer = XMLSigner(c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0)
    signed = signer.sign(
        envelope,
        key=key,
        cert=list(certs),
        reference_uri=["#dlieu"],
        exclude_c14n_transform_element=True,
    )
    if tamper:
        number = signed.find("DLieu/HDon/DLHDon/TTChung/SHDon")
        assert number is not None
        number.text = str(int(number.text or "0") + 1000)
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))
