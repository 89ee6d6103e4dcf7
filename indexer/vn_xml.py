"""Vietnamese XML packages (Decisions 1450/1510, docs/vn-rules.md §5-§6) -> the JSON
interchange shape, so both formats go through one validation path.

Parsing is hardened: no DTD at all (a DOCTYPE is refused, so no external entity and no
entity expansion can happen), no network, lxml's normal size limits (no `huge_tree`), a depth
limit, and only the standard's namespaces (none, or the legacy 2014 one, plus XML-DSig's for
the signatures in DSCKS, §5.8). Each invoice's original XML is kept, byte for byte as
serialised from the parsed tree.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from indexer import vn
from indexer.package import ItemFinding, Package, PackageError, package_from_json
from indexer.text import ascii_int

LEGACY_NS = "http://laphoadon.gdt.gov.vn/2014/09/invoicexml/v1"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"  # every signed invoice's DSCKS/*/Signature
ALLOWED_NAMESPACES = frozenset({"", LEGACY_NS, DSIG_NS})
MAX_DEPTH = 64
CASH_REGISTER_MESSAGE = "206"  # MLTDiep of cash-register invoice batches (§6.3)
VN_OFFSET = "+07:00"  # NLap and message times are Vietnam local time without offset (§1.4)


@dataclass(frozen=True, slots=True)
class XmlPackage:
    package: Package
    originals: dict[int, bytes]  # invoice index in the package -> its HDon element as XML
    #: the TDiep as received when it is a cash-register package (message 206, §6.3), for
    #: its package signature `CKSNNT`; None for any other message type
    cash_register_package: bytes | None = None


def _bad(code: str, message: str, status: int = 422, **details: Any) -> PackageError:
    return PackageError(code, message, status=status, details=details)


_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")


def _parse(body: bytes) -> etree._Element:
    # Refuse a DTD before libxml2 sees it: nothing in it (entities, external subsets) is
    # ever needed, and refusing it by name gives the sender a clear reason.
    first = _FIRST_ELEMENT.search(body)
    if _DOCTYPE.search(body, 0, first.start() if first else len(body)):
        raise _bad("package.xml_dtd_forbidden", "a DOCTYPE is not allowed in invoice XML")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise _bad(
            "package.malformed_xml", f"body is not well-formed XML: {exc}", status=400
        ) from None
    docinfo = root.getroottree().docinfo
    doctype = str(getattr(docinfo, "doctype", ""))  # missing from lxml-stubs, present in lxml
    if doctype or docinfo.internalDTD is not None:
        raise _bad("package.xml_dtd_forbidden", "a DOCTYPE is not allowed in invoice XML")
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad("package.xml_too_deep", f"XML nested deeper than {MAX_DEPTH} levels")
        if not isinstance(element.tag, str):
            continue
        namespace = etree.QName(element).namespace or ""
        if namespace not in ALLOWED_NAMESPACES:
            raise _bad(
                "package.xml_namespace",
                "unexpected XML namespace",
                namespace=namespace,
                element=etree.QName(element).localname,
            )
        stack.extend((child, depth + 1) for child in element)
    return root


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _child(element: etree._Element | None, *path: str) -> etree._Element | None:
    """Follow a path of local names (namespaces are already checked)."""
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c) == name), None)
    return element


def _text(element: etree._Element | None, *path: str) -> str | None:
    found = _child(element, *path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


#: An explicit offset at the end of a date or date-time: `Z`, `+07:00`, `-0500`.
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.ASCII)


def _local_time(value: str | None) -> str | None:
    """`YYYY-MM-DD[Thh:mm:ss]` in Vietnam time -> ISO 8601 with the +07:00 offset; a value
    that already carries its offset (`2025-03-10T10:15:00+07:00`) keeps it."""
    if value is None:
        return None
    date_part, sep, time_part = value.partition("T")
    offset = _OFFSET.search(time_part if sep else date_part)
    if offset and not sep:  # `2025-03-10+07:00`: a day in that zone
        return f"{date_part[: offset.start()]}T00:00:00{offset.group()}"
    if offset:
        return value
    return f"{value}{VN_OFFSET}" if sep else f"{value}T00:00:00{VN_OFFSET}"


#: Elements the data standard requires of every invoice beyond the fields the interchange
#: format requires itself (vn-einvoice §5.1-§5.5; step 1.2 of §8): the version, the invoice's
#: name, the seller's name and address, at least one line, the total in words.
_REQUIRED = (
    ("DLHDon", "TTChung", "PBan"),
    ("DLHDon", "TTChung", "THDon"),
    ("DLHDon", "NDHDon", "NBan", "Ten"),
    ("DLHDon", "NDHDon", "NBan", "DChi"),
    ("DLHDon", "NDHDon", "DSHHDVu", "HHDVu"),
    ("DLHDon", "NDHDon", "TToan", "TgTTTBChu"),
)
_LINE = ("DLHDon", "NDHDon", "DSHHDVu", "HHDVu")


def _is_cash_register(template: str | None, series: str | None) -> bool:
    parsed = (
        vn.parse_series(vn.normalise_series(series.upper(), template or "")) if series else None
    )
    return parsed is not None and parsed.kind == "M"


def invoice_from_hdon(hdon: etree._Element) -> tuple[dict[str, Any], list[ItemFinding]]:
    """Map one `HDon` to the interchange invoice; absent elements stay absent so the
    shared validation names them (`invoice.field.required`). The findings: the data
    standard's other required elements that are missing (`vn.xml.element_required`), and a
    cash-register invoice in the reduced form of §6.3, which has no `DVTTe` and is taken as
    VND (`vn.cash_register.currency_default`)."""
    data = _child(hdon, "DLHDon")
    general = _child(data, "TTChung")
    content = _child(data, "NDHDon")
    totals = _child(content, "TToan")
    seller_id = _text(content, "NBan", "MST")
    invoice: dict[str, Any] = {
        "scheme": "vn",
        "seller_tax_id": seller_id,
        "template": _text(general, "KHMSHDon"),
        "series": _text(general, "KHHDon"),
        "number": _text(general, "SHDon"),
        # MCCQT belongs beside DLHDon; some producers put it in TTChung (§5.1): accept both.
        "authority_code": _text(hdon, "MCCQT") or _text(general, "MCCQT"),
        "issued_at": _local_time(_text(general, "NLap")),
        "currency": _text(general, "DVTTe"),
        "amount_before_tax": _text(totals, "TgTCThue"),
        "tax_amount": _text(totals, "TgTThue"),
        "total_amount": _text(totals, "TgTTTBSo"),
        "seller_name": _text(content, "NBan", "Ten"),
        "buyer_tax_id": _text(content, "NMua", "MST"),
        "buyer_name": _text(content, "NMua", "Ten"),
        "kind": "original",
    }
    findings = [
        ItemFinding("vn.xml.element_required", "/".join(path))
        for path in _REQUIRED
        if (_child(hdon, *path) is None if path == _LINE else _text(hdon, *path) is None)
    ]
    if invoice["currency"] is None and _is_cash_register(invoice["template"], invoice["series"]):
        invoice["currency"] = "VND"
        findings.append(ItemFinding("vn.cash_register.currency_default", "currency", "VND"))
    related = _child(general, "TTHDLQuan")
    if related is not None:
        nature = _text(related, "TCHDon")
        invoice["kind"] = {"1": "replacement", "2": "adjustment"}.get(nature or "", nature)
        invoice["original"] = {
            "related_kind": _text(related, "LHDCLQuan"),
            "seller_tax_id": seller_id,
            "template": _text(related, "KHMSHDCLQuan"),
            "series": _text(related, "KHHDCLQuan"),
            "number": _text(related, "SHDCLQuan"),
        }
        invoice["original"] = {k: v for k, v in invoice["original"].items() if v is not None}
    return {k: v for k, v in invoice.items() if v is not None}, findings


def notices_from_tbao(tbao: etree._Element) -> list[dict[str, Any]]:
    """Cancellations in an error notice 04/SS-HĐĐT (§6.5): invoices with TCTBao = 1.
    Other natures (adjust, replace, explain) arrive as invoices or need no state change; a
    notice that cancels nothing is one `explain` item, so that it still goes through the
    step-1 rules of its sender (§8 step 1.5) and its acceptance is answered."""
    notice = _child(tbao, "DLTBao")
    seller = _text(notice, "MST")
    number = _text(notice, "So") or _text(notice, "NTBao") or "04SS"
    out: list[dict[str, Any]] = []
    listed = _child(notice, "DSHDon")
    for row in [] if listed is None else listed:
        if _local(row) != "HDon" or _text(row, "TCTBao") != "1":
            continue
        out.append(
            {
                "kind": "cancel",
                "reason": _text(row, "LDo"),
                "notice_id": f"{number}/{_text(row, 'STT') or len(out) + 1}",
                "key": {
                    "seller_tax_id": seller,
                    "template": _text(row, "KHMSHDon"),
                    "series": _text(row, "KHHDon"),
                    "number": _text(row, "SHDon"),
                },
            }
        )
    if not out:
        out.append({"kind": "explain", "notice_id": number})
    return out


def parse_xml_package(body: bytes, *, max_items: int) -> XmlPackage:
    """A `TDiep` envelope: TTChung (MNGui sender, MTDiep message id = package id, SLuong
    count of the HDon and TBao elements) and DLieu holding HDon invoices and/or TBao error
    notices. A package whose notices cancel nothing (explanations only) holds no items."""
    root = _parse(body)
    if _local(root) != "TDiep":
        raise _bad(
            "package.xml_envelope", "the root element must be TDiep (§6.1)", root=_local(root)
        )
    header = _child(root, "TTChung")
    payload = _child(root, "DLieu")
    items = [] if payload is None else list(payload)
    hdons = [e for e in items if _local(e) == "HDon"]
    tbaos = [e for e in items if _local(e) == "TBao"]
    notices = [n for e in tbaos for n in notices_from_tbao(e)]
    read = [invoice_from_hdon(h) for h in hdons]
    count = _text(header, "SLuong")
    data = {
        "package_id": _text(header, "MTDiep"),
        "sender": _text(header, "MNGui"),
        # ASCII digits only (`isdigit()` takes `²`, which `int()` refuses); anything else
        # stays text, which `package_from_json` refuses as `package.count_invalid`
        "declared_count": count if (number := ascii_int(count)) is None else number,
        "invoices": [invoice for invoice, _ in read],
        "notices": notices,
    }
    # §6.1: SLuong is the number of data items in DLieu; a 04/SS notice is one, whatever
    # number of invoices it lists (none, when it only explains)
    package = package_from_json(data, max_items=max_items, counted=len(hdons) + len(tbaos))
    findings = {n: tuple(found) for n, (_, found) in enumerate(read) if found}
    if findings:
        package = dataclasses.replace(package, findings=findings)
    originals = {n: etree.tostring(h, encoding="utf-8") for n, h in enumerate(hdons)}
    cash_register = (_text(header, "MLTDiep") or "").strip() == CASH_REGISTER_MESSAGE
    return XmlPackage(package, originals, body if cash_register else None)


def parse_invoice_file(body: bytes, *, max_items: int) -> XmlPackage:
    """An invoice file as a seller hands it to its buyer: one `HDon` on its own (the usual
    file), or a `TDiep` package (`parse_xml_package`). The lone `HDon` is read exactly as in
    a package, as a package of one whose original is that `HDon`."""
    root = _parse(body)
    if _local(root) == "TDiep":
        return parse_xml_package(body, max_items=max_items)
    if _local(root) != "HDon":
        raise _bad(
            "package.xml_envelope",
            "the root element must be HDon (an invoice) or TDiep (a package)",
            root=_local(root),
        )
    invoice, findings = invoice_from_hdon(root)
    data = {"package_id": "file", "sender": "file", "declared_count": 1, "invoices": [invoice]}
    package = package_from_json(data, max_items=max_items)
    if findings:
        package = dataclasses.replace(package, findings={0: tuple(findings)})
    return XmlPackage(package, {0: etree.tostring(root, encoding="utf-8")})


#: A line's fields (vn-einvoice §5.4) as answers name them, with their XML element.
LINE_FIELDS = (
    ("number", "STT"),
    ("nature", "TChat"),
    ("code", "MHHDVu"),
    ("name", "THHDVu"),
    ("unit", "DVTinh"),
    ("quantity", "SLuong"),
    ("unit_price", "DGia"),
    ("discount_rate", "TLCKhau"),
    ("discount_amount", "STCKhau"),
    ("amount", "ThTien"),
    ("tax_rate", "TSuat"),
)
#: Line fields that are numbers: compared and shown as plain decimals (`1000.00` is `1000`).
LINE_NUMBERS = frozenset({"quantity", "unit_price", "discount_rate", "discount_amount", "amount"})
_PLAIN_DECIMAL = re.compile(r"-?\d{1,30}(?:\.\d{1,20})?", re.ASCII)


def _line_value(name: str, text: str | None) -> str | None:
    """A line field's text; a number in plain decimal notation without trailing zeros, a
    rate in capitals (`kct` is `KCT`, compared as text: §5.4). Anything else as written."""
    if text is None:
        return None
    if name in LINE_NUMBERS and _PLAIN_DECIMAL.fullmatch(text):
        whole, _, fraction = text.partition(".")
        fraction = fraction.rstrip("0")
        sign = "-" if whole.startswith("-") else ""
        whole = whole.lstrip("-").lstrip("0") or "0"
        value = f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
        return "0" if value == "-0" else value
    if name == "tax_rate":
        return text.upper()
    return text


def lines_from_hdon(hdon: etree._Element) -> list[dict[str, str | None]]:
    """The goods lines of one `HDon` (`DSHHDVu/HHDVu`, §5.4) in document order, each with
    every field of `LINE_FIELDS` (None when absent)."""
    listed = _child(hdon, *_LINE[:-1])
    return [
        {name: _line_value(name, _text(row, tag)) for name, tag in LINE_FIELDS}
        for row in ([] if listed is None else listed)
        if _local(row) == "HHDVu"
    ]


def lines_of_original(original: bytes) -> list[dict[str, str | None]]:
    """The lines of an original as the originals store keeps it (one `HDon`), parsed with
    the intake's hardening. Raises `PackageError` for a body that is not readable XML."""
    return lines_from_hdon(_parse(original))
