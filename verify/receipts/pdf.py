"""A receipt as one A4 page for people (fpdf2): what it vouches for in one sentence, its
facts, the QR code of the receipt itself (scan it to check the receipt with any JWS library,
or `invoice-verify receipt verify`), and the receipt's text for copying.

Only a receipt that verified is drawn (`verify.receipts.views`), so the page never shows
facts the service did not sign. The page uses the PDF core fonts (Latin-1): a character they
lack is drawn as `?`; the receipt in the QR code and in the text is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy
import zxingcpp
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image

from verify.qr.encode import QUIET_ZONE
from verify.receipts.claims import statement

_GREEN, _AMBER, _GREY = (214, 240, 220), (255, 236, 200), (232, 232, 232)
_QR_MM = 95


def _latin1(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text.encode("latin-1", "replace").decode("latin-1")


def _when(stamp: Any) -> str:
    try:
        return datetime.fromtimestamp(int(stamp), UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError, OSError):
        return _latin1(stamp)


def _key(key: Any) -> str:
    if not isinstance(key, Mapping):
        return _latin1(key)
    return ", ".join(f"{name} {value}" for name, value in key.items() if value is not None)


def _mismatches(items: Any) -> str:
    if not items:
        return "none"
    return "; ".join(
        f"{m.get('field')}: given {m.get('given')}, recorded "
        f"{m.get('recorded') if m.get('recorded') is not None else '(not shown)'}"
        for m in items
        if isinstance(m, Mapping)
    )


def facts(claims: Mapping[str, Any], kid: str) -> list[tuple[str, str]]:
    """The page's table, in reading order (also what the tests read back)."""
    rows = [
        ("Invoice", claims.get("invoice") or "(none found)"),
        ("Key", _key(claims.get("key"))),
        ("Status", claims.get("status")),
        ("Mismatches", _mismatches(claims.get("mismatches"))),
        ("Source", claims.get("source")),
        ("Degraded", "yes" if claims.get("degraded") else "no"),
        ("As of", claims.get("as_of")),
        ("Gap id", claims.get("gap_id")),
    ]
    if claims.get("reason"):
        rows.append(("Why unconfirmed", claims["reason"]))
    if claims.get("pending_intake"):
        rows.append(("Pending intake", "yes: not yet in the primary index"))
    rows += [
        ("Record SHA-256", claims.get("record_sha256") or "(no record)"),
        ("Asked by key", claims.get("caller")),
        ("Receipt id", claims.get("jti")),
        ("Signed at", _when(claims.get("iat"))),
        ("Issuer", claims.get("iss")),
        ("Signing key", kid),
    ]
    return [(label, _latin1(value)) for label, value in rows]


def _banner_colour(claims: Mapping[str, Any]) -> tuple[int, int, int]:
    if claims.get("status") == "unconfirmed" or claims.get("degraded"):
        return _AMBER
    return _GREEN if claims.get("status") == "valid" else _GREY


def _draw_qr(pdf: FPDF, text: str, x: float, y: float, size: float) -> None:
    """The QR code of `text` (zxing-cpp makes it: a few ms, where qrcode's pure-Python mask
    search takes 150), drawn as a 1-bit image of one pixel a module with its quiet zone:
    PDF viewers scale such an image without smoothing, so it stays sharp."""
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    modules = Image.fromarray(numpy.asarray(code.to_image(scale=1, add_quiet_zones=False)))
    framed = Image.new("1", (modules.width + 2 * QUIET_ZONE,) * 2, 1)
    framed.paste(modules.convert("1"), (QUIET_ZONE, QUIET_ZONE))
    pdf.image(framed, x=x, y=y, w=size, h=size)


def render_pdf(token: str, claims: Mapping[str, Any], kid: str) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"Verification receipt {_latin1(claims.get('jti'))}")
    pdf.set_creator("invoice-verify")
    pdf.add_page()
    pdf.set_margins(15, 15, 15)
    width = pdf.w - 30
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(width, 9, "Invoice verification receipt", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(
        width,
        5,
        _latin1(f"Signed by {claims.get('iss')} with key {kid}"),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(3)
    pdf.set_fill_color(*_banner_colour(claims))
    pdf.set_font("Helvetica", "B", 11)
    pdf.multi_cell(
        width,
        6,
        _latin1(statement(claims)),
        fill=True,
        padding=2,
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(3)
    for label, value in facts(claims, kid):
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(38, 5.5, label)
        pdf.set_font(
            "Courier" if label in {"Record SHA-256", "Signing key"} else "Helvetica", "", 9
        )
        pdf.multi_cell(width - 38, 5.5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    _draw_qr(pdf, token, (pdf.w - _QR_MM) / 2, pdf.get_y(), _QR_MM)
    pdf.set_y(pdf.get_y() + _QR_MM + 2)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(
        width,
        4,
        _latin1(
            "The QR code holds this receipt, a compact JWS (Ed25519). Check it with "
            f"`invoice-verify receipt verify`, POST /api/v1/receipts/verify, or any JWS library "
            f"and the public keys at {claims.get('iss')}/.well-known/jwks.json."
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(1)
    pdf.set_font("Courier", "", 5.5)
    pdf.multi_cell(width, 2.6, token, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
