"""Property-based fuzzing of the running service (a real `invoice-verify serve` process on
loopback, real HTTP): every route, and every field of every body, gets the adversarial values
of tests/strategies.py. The property: the answer is never a 5xx and every error is the JSON
envelope; and afterwards intake is still live: a good package posted after the fuzz reaches
the primary at once (200 accepted, not queued behind a poison entry) and its lookup is valid,
and the server logged no unhandled error."""

from __future__ import annotations

import csv
import io
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.factories import PROVIDER as PROVIDER_ID
from tests.factories import SELLER, cancel, cn_digital, cn_invoice, package, vn_invoice, vn_key
from tests.ledgers import xlsx_bytes
from tests.strategies import HOSTILE_INTS, hostile_json, hostile_text, hostile_value
from tests.verify.live_server import LiveServer, live_server
from tests.verify.qr.images import photo
from tests.xml_factories import xml_package
from verify.http.openapi import XLSX
from verify.lookup.query import KEY_PARAMS, MATCH_PARAMS

pytestmark = pytest.mark.slow
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
SELLER_Q = {"seller_tax_id": "0100109106"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz") / "data") as live:
        status, _ = live.post_json("/api/v1/packages", package([vn_invoice(1)]))
        assert status == 200
        yield live


def check(status: int, body: bytes) -> None:
    assert status < 500, body[:500]
    if status >= 400:
        try:
            error = json.loads(body)["error"]
        except ValueError:
            raise AssertionError(f"{status}: not the JSON error envelope: {body[:300]!r}") from None
        assert isinstance(error["code"], str)
        assert error["code"]
        assert isinstance(error["message"], str)


def dumps(body: Any) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity as bare tokens, lone surrogates
    escaped."""
    return json.dumps(body).encode()


# --- query strings ----------------------------------------------------------------------

PARAM_NAMES = st.sampled_from([*sorted(KEY_PARAMS | MATCH_PARAMS), "callback_url", "x",
                               "number[]", ""])
PARAM_VALUES = st.one_of(
    hostile_text(),
    st.from_regex(r"\d{1,22}", fullmatch=True),
    st.sampled_from(["0100109106", "1", "C22TAA", "00" + "F" * 32, "M1-22-ABCDE-00000000001",
                     "013002200211", "81532753", "23442000000014209621"]),
)


#: aiohttp refuses a request line longer than 8,190 bytes itself, before the application
#: (a plain-text 400: `test_an_overlong_request_line_is_a_4xx`); the fuzz stays below it.
MAX_QUERY = 8000


def query(params: list[tuple[str, str]]) -> str:
    text = urllib.parse.urlencode(params, errors="surrogatepass")
    assume(len(text) < MAX_QUERY)
    return text


def test_an_overlong_request_line_is_a_4xx(server: LiveServer) -> None:
    status, _ = server.call("GET", "/api/v1/invoices/lookup?number=" + "1" * 9000)
    assert 400 <= status < 500


@FUZZ
@given(st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=8))
def test_lookup_never_fails_the_server(server: LiveServer, params: list[tuple[str, str]]) -> None:
    check(*server.call("GET", "/api/v1/invoices/lookup?" + query(params)))


QUERY_ROUTES = {
    ("GET", "/api/v1/admin/audit"): ["key_id", "action", "target", "since", "until", "limit"],
    ("GET", "/api/v1/gaps"): ["status", "reason", "since", "after", "limit"],
    ("GET", "/api/v1/outages"): ["system", "kind", "since", "after", "limit"],
    ("GET", "/api/v1/reports/missing"): ["seller_tax_id", "template", "series", "code",
                                         "year", "from", "to", "format"],
    ("POST", "/api/v1/reports/ledger"): ["buyer_tax_id", "year", "from", "to", "format"],
    ("GET", "/api/v1/invoices/vn:0100109106:1:C22TAA:1/qr.png"): ["size", "ec"],
    ("GET", "/api/v1/journal"): ["state", "after", "limit"],
}


@st.composite
def route_queries(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]]]:
    (method, path), names = draw(st.sampled_from(sorted(QUERY_ROUTES.items())))
    params = draw(st.lists(st.tuples(st.sampled_from([*names, "x"]), PARAM_VALUES),
                           max_size=5))
    return method, path, params


@FUZZ
@given(route_queries())
def test_every_query_parameter_of_every_route(
        server: LiveServer, route: tuple[str, str, list[tuple[str, str]]]) -> None:
    method, path, params = route
    body = b"number,series\n1,C22TAA\n" if method == "POST" else None
    check(*server.call(method, f"{path}?{query(params)}", body, "text/csv"))


ID_ROUTES = [("GET", "/api/v1/invoices/{}/original.xml"), ("GET", "/api/v1/invoices/{}/qr.png"),
             ("GET", "/api/v1/gaps/{}"), ("DELETE", "/api/v1/admin/keys/{}"),
             ("POST", "/api/v1/journal/{}/retry"), ("DELETE", "/api/v1/journal/{}")]


@FUZZ
@given(st.sampled_from(ID_ROUTES),
       st.one_of(hostile_text(), st.builds(lambda *p: ":".join(p), st.sampled_from(["vn", "cn"]),
                                           hostile_text(), hostile_text(), hostile_text())))
def test_every_path_id(server: LiveServer, route: tuple[str, str], raw_id: str) -> None:
    method, template = route
    quoted = urllib.parse.quote(raw_id.encode("utf-8", "surrogatepass"), safe="")
    if not quoted or quoted in {".", ".."}:
        quoted = "%2E"
    check(*server.call(method, template.format(quoted)))


# --- intake -----------------------------------------------------------------------------

INVOICE_FIELDS = sorted({*vn_invoice(1), *cn_invoice(), "invoice_code", "invoice_number",
                         "type_code", "check_code", "original", "lines", "declared_count"})
NOTICE_FIELDS = sorted({*cancel(1), "original"})
KEY_FIELDS = sorted(vn_key(1))


@st.composite
def near_packages(draw: st.DrawFn) -> dict[str, Any]:
    """Valid packages of both schemes with some fields of invoices, notices, notice keys or
    the envelope replaced by adversarial values."""
    makers = [lambda n: vn_invoice(n), lambda n: cn_invoice(f"{n:08d}"),
              lambda n: cn_digital(f"{23442000000014200000 + n}")]
    invoices = [draw(st.sampled_from(makers))(draw(st.integers(2, 60)))
                for _ in range(draw(st.integers(0, 3)))]
    notices = [cancel(draw(st.integers(2, 60))) for _ in range(draw(st.integers(0, 1)))]
    for invoice in invoices:
        for name in draw(st.lists(st.sampled_from(INVOICE_FIELDS), min_size=1, max_size=3)):
            invoice[name] = draw(hostile_value())
    for notice in notices:
        for name in draw(st.lists(st.sampled_from(NOTICE_FIELDS), max_size=2)):
            notice[name] = draw(hostile_value())
        for name in draw(st.lists(st.sampled_from(KEY_FIELDS), max_size=2)):
            if isinstance(notice.get("key"), dict):
                notice["key"][name] = draw(hostile_value())
    body = package(invoices, notices)
    if draw(st.booleans()):
        body[draw(st.sampled_from(sorted(body)))] = draw(hostile_value())
    return body


@FUZZ
@given(st.one_of(near_packages(), hostile_json()))
def test_intake_never_fails_the_server(server: LiveServer, body: Any) -> None:
    check(*server.call("POST", "/api/v1/packages", dumps(body)))


def _xml_safe(text: str) -> str:
    """What an XML document can carry at all (the bytes fuzz sends the rest)."""
    return "".join(c for c in text if c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff"
                                                        and not "\ud800" <= c <= "\udfff"))


@st.composite
def near_xml_packages(draw: st.DrawFn) -> bytes:
    """Valid XML packages with a few element texts of the invoices or of the envelope
    replaced by adversarial text."""
    invoices = [vn_invoice(draw(st.integers(2, 60))) for _ in range(draw(st.integers(1, 3)))]
    for invoice in invoices:
        for name in draw(st.lists(st.sampled_from(sorted(vn_invoice(1))), max_size=3)):
            invoice[name] = _xml_safe(draw(hostile_text()))
    envelope: dict[str, Any] = {
        "package_id": draw(st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True))}
    for name in draw(st.lists(st.sampled_from(["package_id", "sender", "count"]),
                              max_size=2)):  # the TDiep header: MTDiep, MNGui, SLuong
        envelope[name] = _xml_safe(draw(hostile_text()))
    return xml_package(invoices, **envelope)


@FUZZ
@given(near_xml_packages())
def test_xml_intake_never_fails_the_server(server: LiveServer, body: bytes) -> None:
    check(*server.call("POST", "/api/v1/packages", body, "application/xml"))


BODY_ROUTES = ["/api/v1/packages", "/api/v1/verify/batch", "/api/v1/verify/qr",
               "/api/v1/verify/qr-text", "/api/v1/reports/ledger?buyer_tax_id=0100109106&year"
               "=2022", "/api/v1/admin/keys", "/api/v1/admin/registry", "/api/v1/outages",
               "/api/v1/reconcile"]
CONTENT_TYPES = ["application/json", "text/plain", "application/xml", "text/csv", "",
                 "multipart/form-data", "multipart/form-data; boundary=x", "image/png",
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "application/json; charset=x-nope", "application/json; charset=utf-7",
                 "text/csv; charset=utf-16", "application/xml; charset=x-nope",
                 'multipart/form-data; boundary="', "application/json;;;"]


@FUZZ
@given(st.sampled_from(BODY_ROUTES), st.binary(max_size=400), st.sampled_from(CONTENT_TYPES))
def test_raw_bytes_on_every_body_route(server: LiveServer, path: str, raw: bytes,
                                       content_type: str) -> None:
    check(*server.call("POST", path, raw, content_type or None))


# --- batch, QR text, ledgers ------------------------------------------------------------

ROWS = st.lists(st.dictionaries(st.sampled_from(sorted(KEY_PARAMS | MATCH_PARAMS)),
                                hostile_value(), max_size=5), max_size=6)


def _csv(rows: list[dict[str, Any]]) -> bytes:
    names = sorted({k for r in rows for k in r}) or ["number"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    for row in rows:
        writer.writerow([str(row.get(n, "")) for n in names])
    return out.getvalue().encode("utf-8", "surrogatepass")


@FUZZ
@given(ROWS, st.sampled_from(["csv", "list", "object"]))
def test_every_batch_row_field(server: LiveServer, rows: list[dict[str, Any]],
                               form: str) -> None:
    rows = [{**{k: str(v) for k, v in vn_key(1).items()}, **r} for r in rows]
    status, body = (server.call("POST", "/api/v1/verify/batch", _csv(rows), "text/csv")
                    if form == "csv" else server.post_json(
                        "/api/v1/verify/batch", rows if form == "list" else {"lookups": rows}))
    check(status, body)
    if status == 200:  # every row answered, the stream not cut
        lines = body.decode().splitlines()
        assert [json.loads(line)["row"] for line in lines] == list(range(1, len(rows) + 1))


QR_TEXTS = st.one_of(
    hostile_text(),
    st.builds(lambda parts: "vn:" + ":".join(parts),
              st.lists(st.one_of(st.sampled_from(["0100109106", "1", "C22TAA"]),
                                 hostile_text()), min_size=4, max_size=4)),
    st.builds(lambda parts: "IVQR1|vn|" + "|".join(parts),
              st.lists(st.one_of(st.sampled_from(["0100109106", "1", "C22TAA", "1"]),
                                 hostile_text()), min_size=6, max_size=6)),
    st.builds(lambda parts: "https://tracuu.example/?" + query(parts),
              st.lists(st.tuples(st.sampled_from(["nbmst", "khmshdon", "khhdon", "shdon",
                                                  "mccqt", "tgtttbso"]), hostile_text()),
                       max_size=5)))


@FUZZ
@given(st.one_of(QR_TEXTS.map(lambda t: {"payload": t}),
                 st.dictionaries(st.sampled_from(["payload", "x"]), hostile_value(),
                                 max_size=2)))
def test_qr_text_payloads(server: LiveServer, body: dict[str, Any]) -> None:
    check(*server.post_json("/api/v1/verify/qr-text", body))


def _xlsx_cell(value: Any) -> Any:
    """What a spreadsheet cell can hold: no control characters, lone surrogates or integers
    past Excel's 15 digits (openpyxl writes them, Excel would not)."""
    if isinstance(value, str):
        return _xml_safe(value)[:32_000]
    if isinstance(value, int) and abs(value) >= 10**15:
        return str(value)[:32_000]
    return value


LEDGER_COLUMNS = ["seller_tax_id", "template", "series", "number", "invoice_code",
                  "issued_on", "amount", "tax_amount", "total_amount"]


@FUZZ
@given(st.lists(st.lists(hostile_text(), min_size=len(LEDGER_COLUMNS),
                         max_size=len(LEDGER_COLUMNS)), min_size=1, max_size=5))
def test_every_ledger_cell(server: LiveServer, rows: list[list[str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(LEDGER_COLUMNS)
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8", "surrogatepass")
    check(*server.call("POST", "/api/v1/reports/ledger?buyer_tax_id=0314409058-002&year=2022",
                       data, "text/csv"))


@settings(FUZZ, max_examples=40)
@given(st.lists(st.lists(st.one_of(hostile_text(), st.sampled_from(HOSTILE_INTS),
                                   st.floats(allow_nan=False, allow_infinity=False)).map(
    _xlsx_cell), min_size=len(LEDGER_COLUMNS), max_size=len(LEDGER_COLUMNS)),
                min_size=1, max_size=4))
def test_every_xlsx_ledger_cell(server: LiveServer, rows: list[list[Any]]) -> None:
    check(*server.call("POST", "/api/v1/reports/ledger?buyer_tax_id=0314409058-002&year=2022",
                       xlsx_bytes(LEDGER_COLUMNS, rows), XLSX))


@settings(FUZZ, max_examples=25)
@given(st.lists(QR_TEXTS.map(_xml_safe).filter(lambda t: 0 < len(t.encode()) <= 800),
                min_size=1, max_size=2))
def test_qr_photos_whose_codes_read_anything(server: LiveServer, texts: list[str]) -> None:
    """A photo with one good code and the drawn ones: each is answered on its own."""
    good = "vn:0100109106:1:C22TAA:1"
    status, body = server.call("POST", "/api/v1/verify/qr",
                               photo([good, *texts], seed=0, fmt="PNG"), "image/png")
    check(status, body)
    assert status == 200, body[:300]
    codes = json.loads(body)["codes"]
    mine = [c for c in codes if c["payload"]["raw"] == good]
    assert mine, codes
    assert mine[0]["result"] is not None, mine
    assert mine[0]["result"]["status"] == "valid", mine


# --- admin and outage bodies ------------------------------------------------------------

def _with_hostile(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda names, values: {**base, **dict(zip(names, values, strict=False))},
                     st.lists(st.sampled_from([*sorted(base), "x"]), min_size=1, max_size=3),
                     st.lists(hostile_value(), min_size=3, max_size=3))


# Not the seller and provider of the good package the last test posts: the registry's
# content decides what intake accepts, which is not what this fuzz is about.
TAXPAYER = {"tax_id": "0312345602", "name": "Công ty", "status": "00"}
PROVIDER = {"provider_id": "0312345627", "name": "T-VAN", "valid_from": "2021-07-01"}
ADMIN_BODIES = [
    ("/api/v1/admin/keys", _with_hostile({"role": "verify", "scopes": [], "name": "n"})),
    ("/api/v1/outages", _with_hostile({"system": "upstream", "start": "2022-01-01T00:00:00Z",
                                       "end": "2022-01-01T01:00:00Z", "reason": "r"})),
    ("/api/v1/admin/registry", st.builds(
        lambda t, p: {"taxpayers": t, "providers": p},
        st.lists(st.one_of(_with_hostile(TAXPAYER), hostile_value()), max_size=3),
        st.lists(st.one_of(_with_hostile(PROVIDER), hostile_value()), max_size=3))),
]


@FUZZ
@given(st.sampled_from(range(len(ADMIN_BODIES))).flatmap(
    lambda i: st.tuples(st.just(ADMIN_BODIES[i][0]), ADMIN_BODIES[i][1])))
def test_every_field_of_admin_and_outage_bodies(server: LiveServer,
                                                case: tuple[str, dict[str, Any]]) -> None:
    path, body = case
    check(*server.call("POST", path, dumps(body)))


# --- multipart uploads ------------------------------------------------------------------

@FUZZ
@given(st.sampled_from(["/api/v1/verify/qr", "/api/v1/reports/ledger?buyer_tax_id="
                        "0100109106&year=2022"]),
       st.sampled_from(["", "x", "a" * 80, "é", "\"q\"", "--"]),
       st.lists(st.sampled_from([b"Content-Disposition: form-data; name=image",
                                 b"Content-Disposition: form-data; name=ledger; filename=a.csv",
                                 b"Content-Type: text/csv", b"Content-Transfer-Encoding: zz",
                                 b"\x00garbage", b"X" * 9000, b": no name", b"Content-Length: x"]),
                max_size=4),
       st.binary(max_size=200), st.booleans())
def test_multipart_framing(server: LiveServer, path: str, boundary: str, headers: list[bytes],
                           payload: bytes, close: bool) -> None:
    b = boundary.encode("utf-8", "replace") or b"x"
    body = b"--" + b + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + payload + b"\r\n"
    if close:
        body += b"--" + b + b"--\r\n"
    content_type = f"multipart/form-data; boundary={boundary}" if boundary else \
        "multipart/form-data"
    check(*server.call("POST", path, body, content_type.encode("latin-1", "replace").decode(
        "latin-1")))


def _latin1(text: str) -> str:
    """What reaches the application in a header: latin-1 (what http.client sends) without
    control characters, which aiohttp refuses itself (`test_a_nul_in_a_header_is_a_4xx`)."""
    text = text.encode("latin-1", "replace").decode("latin-1")
    return "".join(c for c in text if c == "\t" or not (c < " " or c == "\x7f"))


def test_a_nul_in_a_header_is_a_4xx(server: LiveServer) -> None:
    status, _ = server.call("GET", "/metrics", content_type=None,
                            headers={"Authorization": "Bearer \x00"})
    assert 400 <= status < 500


@FUZZ
@given(st.one_of(hostile_text().map(lambda t: "Bearer " + t), hostile_text(),
                 st.builds(lambda t: f"Bearer ivk_{t}_{t}", hostile_text())).map(_latin1),
       st.sampled_from(["/api/v1/invoices/lookup?number=23442000000014209621",
                        "/api/v1/admin/keys", "/metrics"]))
def test_any_authorization_header(server: LiveServer, authorization: str, path: str) -> None:
    status, body = server.call("GET", path, content_type=None,
                               headers={"Authorization": authorization})
    check(status, body)


@FUZZ
@given(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.%", max_size=12),
                max_size=4),
       st.one_of(hostile_json(), st.fixed_dictionaries({"role": hostile_text(),
                                                        "scopes": hostile_json()})))
def test_any_method_and_path(server: LiveServer, method: str, segments: list[str],
                             body: Any) -> None:
    path = "/api/v1/" + "/".join(segments)
    data = dumps(body) if method in {"POST", "PUT", "PATCH"} else None
    check(*server.call(method, path, data))


# --- afterwards -------------------------------------------------------------------------

def test_intake_is_still_live_after_the_fuzz(server: LiveServer) -> None:
    """Last in this module: whatever the fuzz left in the intake journal, a good package from
    another sender's invoices reaches the primary now, not `queued` behind it."""
    good = vn_invoice(99_999, series="C22TFZ")
    registry = {  # the fuzz may have imported a registry without this seller and provider
        "taxpayers": [{"tax_id": SELLER, "name": "Công ty Thử nghiệm", "status": "00",
                       "registrations": [{"template": "1", "series": "C22TFZ",
                                          "from": "2022-01-01"}]}],
        "providers": [{"provider_id": PROVIDER_ID, "name": "T-VAN",
                       "valid_from": "2021-07-01", "valid_to": "2099-12-31"}]}
    status, body = server.post_json("/api/v1/admin/registry", registry)
    assert status == 200, body
    status, body = server.post_json("/api/v1/packages", package([good]))
    assert status == 200, body[:500]
    assert json.loads(body)["result"] == "accepted", body
    key = {k: str(v) for k, v in vn_key(99_999, series="C22TFZ").items()}
    status, body = server.call("GET", "/api/v1/invoices/lookup?" + urllib.parse.urlencode(key))
    assert status == 200
    answer = json.loads(body)
    assert (answer["status"], answer["source"]) == ("valid", "primary")
    assert server.unhandled_errors() == []

