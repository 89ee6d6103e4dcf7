"""schemathesis against the live service: every operation of `/openapi.json`, called with the
admin key on a real `invoice-verify serve` process, must answer as the document says (no 5xx,
a documented status, a documented content type, a body that fits the documented schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import package, vn_invoice
from tests.verify.live_server import LiveServer, live_server
from verify.http.openapi import SPEC, XLSX

pytestmark = pytest.mark.slow
# Bodies schemathesis has no serializer for are sent as the bytes it generates.
schemathesis.serializer.alias(["image/heic", XLSX], "application/octet-stream")
schemathesis.serializer.alias(["text/csv", "application/jose"], "text/plain")
schema = schemathesis.openapi.from_dict(SPEC)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("schemathesis") / "data") as server:
        status, _ = server.post_json("/api/v1/packages", package([vn_invoice(1)]))
        assert status == 200
        yield server


def test_the_served_document_is_the_one_tested(live: LiveServer) -> None:
    status, body = live.call("GET", "/openapi.json", content_type=None)
    assert status == 200
    assert json.loads(body) == json.loads(json.dumps(SPEC))


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case,
                                               live: LiveServer) -> None:
    case.call_and_validate(base_url=live.base, headers=live.auth, checks=CHECKS, timeout=30)




def test_no_answer_hid_a_bug(live: LiveServer) -> None:
    """Last: no answer was a logged internal error, a cut stream or a failed row or code."""
    assert live.unhandled_errors() == []
