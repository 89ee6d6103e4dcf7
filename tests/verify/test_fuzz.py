"""Property-based fuzzing of the running service: whatever arrives, the answer is never a 5xx
and every error is the JSON envelope. A real server process on loopback, real HTTP."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import package, vn_invoice
from tests.xml_factories import xml_package
from verify.lookup import KEY_PARAMS, MATCH_PARAMS

pytestmark = pytest.mark.slow
FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass(frozen=True)
class Server:
    base: str
    token: str

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path, data=body, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("fuzz")
    port = _free_port()
    env = {**os.environ, "INVOICE_DATA_DIR": str(data), "INVOICE_PORT": str(port),
           "INVOICE_LOG_LEVEL": "WARNING", "INVOICE_RATE_KEY_BURST": "1000000",
           "INVOICE_RATE_KEY_PER_MINUTE": "1000000", "INVOICE_RATE_INVOICE_PER_DAY": "1000000",
           "INVOICE_RATE_MISSES_PER_HOUR": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "verify", "serve"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, bufsize=0)
    try:
        assert proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        seen = b""
        while b"Running on" not in seen:  # aiohttp's start-up line, once it listens
            assert selector.select(timeout=30), f"server did not start: {seen!r}"
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, f"server exited: {seen!r}"
            seen += chunk
        server = Server(f"http://127.0.0.1:{port}", (data / "admin.key").read_text().strip())
        status, _ = server.call("POST", "/api/v1/packages",
                                json.dumps(package([vn_invoice(1)])).encode())
        assert status == 200
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr is not None:
            proc.stderr.close()


def check(status: int, body: bytes) -> None:
    assert status < 500, body[:500]
    if status >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str)
        assert error["code"]
        assert isinstance(error["message"], str)


PARAM_NAMES = st.sampled_from([*sorted(KEY_PARAMS | MATCH_PARAMS), "x", "number[]", ""])
PARAM_VALUES = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\d{1,22}", fullmatch=True),
    st.from_regex(r"[CK]\d{2}[A-Z]{3}", fullmatch=True),
    st.sampled_from(["0100109106", "1", "C22TAA", "1e309", "NaN", "-0", "2022-02-30",
                     "00" + "F" * 32, "M1-22-ABCDE-00000000001", "\x00", "%", "'--"]),
)


@FUZZ
@given(st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=8))
def test_lookup_never_fails_the_server(server: Server, params: list[tuple[str, str]]) -> None:
    check(*server.call("GET", "/api/v1/invoices/lookup?" + urllib.parse.urlencode(params)))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10),
                                                                        children, max_size=5),
    max_leaves=30)
INVOICE_FIELDS = [*sorted(vn_invoice(1)), "invoice_code", "invoice_number", "type_code",
                  "check_code", "original"]


@st.composite
def near_packages(draw: st.DrawFn) -> dict[str, Any]:
    """Valid packages with a few fields replaced by arbitrary JSON."""
    invoices = [vn_invoice(draw(st.integers(1, 50))) for _ in range(draw(st.integers(1, 3)))]
    for invoice in invoices:
        for name in draw(st.lists(st.sampled_from(INVOICE_FIELDS), max_size=3)):
            invoice[name] = draw(JSON)
    body = package(invoices)
    if draw(st.booleans()):
        body[draw(st.sampled_from(sorted(body)))] = draw(JSON)
    return body


@FUZZ
@given(st.one_of(near_packages(), JSON))
def test_intake_never_fails_the_server(server: Server, body: Any) -> None:
    check(*server.call("POST", "/api/v1/packages", json.dumps(body).encode()))


XML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@st.composite
def near_xml_packages(draw: st.DrawFn) -> bytes:
    """Valid XML packages with a few element texts replaced by arbitrary text."""
    invoices = [vn_invoice(draw(st.integers(1, 50))) for _ in range(draw(st.integers(1, 3)))]
    for invoice in invoices:
        for name in draw(st.lists(st.sampled_from(sorted(vn_invoice(1))), max_size=3)):
            invoice[name] = draw(XML_TEXT)
    return xml_package(invoices, package_id=draw(st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True)))


@FUZZ
@given(near_xml_packages())
def test_xml_intake_never_fails_the_server(server: Server, body: bytes) -> None:
    check(*server.call("POST", "/api/v1/packages", body, "application/xml"))


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["application/json", "text/plain",
                                                 "application/xml", ""]))
def test_raw_bytes_never_fail_the_server(server: Server, raw: bytes, content_type: str) -> None:
    check(*server.call("POST", "/api/v1/packages", raw, content_type))
    check(*server.call("POST", "/api/v1/admin/keys", raw, content_type))


@FUZZ
@given(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.%", max_size=12),
                max_size=4),
       st.one_of(JSON, st.fixed_dictionaries({"role": st.text(max_size=8), "scopes": JSON})))
def test_any_method_and_path(server: Server, method: str, segments: list[str],
                             body: Any) -> None:
    path = "/api/v1/" + "/".join(segments)
    data = json.dumps(body).encode() if method in {"POST", "PUT", "PATCH"} else None
    check(*server.call(method, path, data))


def test_the_server_still_answers_after_fuzzing(server: Server) -> None:
    status, body = server.call("GET", "/api/v1/invoices/lookup?seller_tax_id=0100109106"
                                      "&template=1&series=C22TAA&number=1")
    assert status == 200
    assert json.loads(body)["status"] == "valid"
