"""The fuzz of tests/verify/test_fuzz.py on `POST /api/v1/verify/file` and
`GET /api/v1/invoices/{id}/lines`, on the same live server: files near valid ones (an HDon or
a JSON invoice with adversarial field values), raw bytes under every content type, broken
multipart framing and hostile ids never answer a 5xx, every error is the JSON envelope, and
the server logs no unhandled error."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from tests.factories import vn_invoice
from tests.strategies import hostile_json, hostile_text
from tests.verify.live_server import LiveServer
from tests.verify.test_fuzz import (
    CONTENT_TYPES,
    FUZZ,
    _xml_safe,
    check,
    dumps,
    near_packages,
    server,  # noqa: F401  (the module's live server)
)
from tests.xml_factories import hdon

pytestmark = pytest.mark.slow
URL = "/api/v1/verify/file"


@st.composite
def near_invoice_files(draw: st.DrawFn) -> bytes:
    """One HDon (invoice 1, the one the server holds, or another) with a few element texts
    replaced by adversarial text, or a goods line's."""
    invoice = vn_invoice(draw(st.sampled_from([1, 1, 7])))
    for name in draw(st.lists(st.sampled_from(sorted(invoice)), max_size=3)):
        invoice[name] = _xml_safe(draw(hostile_text()))
    element = hdon(invoice)
    for tag in draw(st.lists(st.sampled_from(["THHDVu", "ThTien", "TSuat", "STT", "TChat"]),
                             max_size=2)):
        found = element.find(f"DLHDon/NDHDon/DSHHDVu/HHDVu/{tag}")
        if found is not None:
            found.text = _xml_safe(draw(hostile_text()))
    return bytes(etree.tostring(element, encoding="UTF-8", xml_declaration=True))


@FUZZ
@given(near_invoice_files())
def test_near_xml_files(server: LiveServer, body: bytes) -> None:  # noqa: F811
    check(*server.call("POST", URL, body, "application/xml"))


@FUZZ
@given(st.one_of(near_packages(), near_packages().map(lambda p: (p["invoices"] or [{}])[0]),
                 hostile_json()))
def test_near_json_files(server: LiveServer, body: Any) -> None:  # noqa: F811
    check(*server.call("POST", URL, dumps(body)))


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(CONTENT_TYPES))
def test_raw_bytes(server: LiveServer, raw: bytes, content_type: str) -> None:  # noqa: F811
    check(*server.call("POST", URL, raw, content_type or None))


@FUZZ
@given(st.sampled_from(["", "x", "a" * 80, "--"]),
       st.lists(st.sampled_from([b"Content-Disposition: form-data; name=file",
                                 b"Content-Disposition: form-data; name=file; filename=a.xml",
                                 b"Content-Type: text/xml", b"\x00garbage", b"X" * 9000]),
                max_size=3),
       st.binary(max_size=200), st.booleans())
def test_multipart_framing(server: LiveServer, boundary: str,  # noqa: F811
                           headers: list[bytes], payload: bytes, close: bool) -> None:
    b = boundary.encode() or b"x"
    body = b"--" + b + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + payload + b"\r\n"
    if close:
        body += b"--" + b + b"--\r\n"
    content_type = f"multipart/form-data; boundary={boundary}" if boundary else \
        "multipart/form-data"
    check(*server.call("POST", URL, body, content_type))


@FUZZ
@given(st.one_of(hostile_text(), st.builds(lambda *p: ":".join(p), st.sampled_from(["vn", "cn"]),
                                           hostile_text(), hostile_text(), hostile_text())))
def test_lines_of_any_id(server: LiveServer, raw_id: str) -> None:  # noqa: F811
    quoted = urllib.parse.quote(raw_id.encode("utf-8", "surrogatepass"), safe="")
    if not quoted or quoted in {".", ".."}:
        quoted = "%2E"
    check(*server.call("GET", f"/api/v1/invoices/{quoted}/lines"))


def test_no_answer_hid_a_bug(server: LiveServer) -> None:  # noqa: F811
    """Last: the file and lines routes answered the valid file, and logged no error."""
    status, body = server.call("POST", URL, bytes(etree.tostring(hdon(vn_invoice(1)))),
                               "application/xml")
    assert status == 200, body
    assert server.unhandled_errors() == []
