"""/openapi.json describes every operation precisely: bodies and answers per content type,
every status, the limits of every parameter, the bearer scheme; and the query parameters it
documents are exactly the ones each route takes. (That its paths are the router's routes is
tests/verify/access/test_route_table.py; that the live service answers as it says is
tests/verify/test_schemathesis.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client
from verify.http.openapi import NDJSON, PATHS, SPEC, XLSX

OPS = [(path, method, op) for path, ops in PATHS.items() for method, op in ops.items()]
IDS = [f"{method.upper()} {path}" for path, method, _ in OPS]
OPEN = {"/metrics", "/healthz", "/readyz", "/openapi.json", "/.well-known/jwks.json"}


def content(op: dict[str, Any], status: str) -> set[str]:
    return set(op["responses"][status].get("content", {}))


@pytest.mark.parametrize(("path", "method", "op"), OPS, ids=IDS)
def test_every_operation_states_its_answers_and_security(path: str, method: str,
                                                         op: dict[str, Any]) -> None:
    statuses = set(op["responses"])
    assert any(s.startswith("2") for s in statuses)
    for status, response in op["responses"].items():
        assert response["description"]
        if status.startswith(("4", "5")) and path not in OPEN:
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
        if status.startswith("2"):
            assert response.get("content"), (path, status)
    if path in OPEN:
        assert op["security"] == []
    else:
        assert op["security"] == [{"bearer": []}]
        assert {"401", "403", "429"} <= statuses
    if "requestBody" in op:
        assert {"400", "408", "413", "415"} <= statuses
        assert op["requestBody"]["content"]


@pytest.mark.parametrize(("path", "method", "op"), OPS, ids=IDS)
def test_every_parameter_has_its_limits(path: str, method: str, op: dict[str, Any]) -> None:
    for param in op.get("parameters", []):
        schema = param["schema"]
        bounded = ("enum" in schema or "maxLength" in schema
                   or {"minimum", "maximum"} <= schema.keys())
        assert bounded, (path, param["name"])
        if param["in"] == "path":
            assert param["required"] is True


@pytest.mark.parametrize(("path", "method", "types"), [
    ("/api/v1/verify/batch", "post", {NDJSON}),
    ("/api/v1/reports/missing", "get", {"application/json", "text/csv"}),
    ("/api/v1/reports/ledger", "post", {"application/json", "text/csv"}),
    ("/metrics", "get", {"text/plain"}),
    ("/api/v1/invoices/{id}/qr.png", "get", {"image/png"}),
    ("/api/v1/invoices/{id}/original.xml", "get", {"application/xml"}),
])
def test_content_types_of_answers(path: str, method: str, types: set[str]) -> None:
    assert content(PATHS[path][method], "200") == types


@pytest.mark.parametrize(("path", "types"), [
    ("/api/v1/verify/qr", {"multipart/form-data", "image/jpeg", "image/png", "image/webp",
                           "image/heic"}),
    ("/api/v1/reports/ledger", {"multipart/form-data", "text/csv", XLSX}),
    ("/api/v1/packages", {"application/json", "application/xml"}),
    ("/api/v1/verify/batch", {"application/json", "text/csv"}),
])
def test_content_types_of_uploads(path: str, types: set[str]) -> None:
    assert set(PATHS[path]["post"]["requestBody"]["content"]) == types


def test_components_resolve() -> None:
    text = str(SPEC)
    for name in SPEC["components"]["schemas"]:
        assert f"#/components/schemas/{name}" in text or name == "Error"
    refs = {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}
    assert refs <= set(SPEC["components"]["schemas"])


QUERY_OPS = [(path, method, op) for path, method, op in OPS
             if any(p["in"] == "query" for p in op.get("parameters", []))]


def _url(path: str) -> str:
    return path.replace("{id}", "vn:0100109106:1:C22TAA:1")


@pytest.mark.parametrize(("path", "method", "op"), QUERY_OPS,
                         ids=[f"{m.upper()} {p}" for p, m, _ in QUERY_OPS])
async def test_documented_query_parameters_are_exactly_the_accepted_ones(
        cli: Client, path: str, method: str, op: dict[str, Any]) -> None:
    names = [p["name"] for p in op["parameters"] if p["in"] == "query"]
    every = "&".join(f"{name}=" for name in names)  # empty: known, but not given
    resp = await cli.request(method.upper(), f"{_url(path)}?{every}")
    body = await resp.json()
    assert body.get("error", {}).get("code") != "unknown_parameter", body
    resp = await cli.request(method.upper(), f"{_url(path)}?undocumented=1")
    assert (await resp.json())["error"]["code"] == "unknown_parameter"


@pytest.mark.parametrize(("path", "method", "op"), OPS, ids=IDS)
def test_retry_after_is_stated_where_it_is_sent(path: str, method: str,
                                                op: dict[str, Any]) -> None:
    responses = op["responses"]
    if "429" in responses:
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
    if (path, method) in {("/api/v1/packages", "post"), ("/api/v1/verify/qr", "post")}:
        assert "Retry-After" in responses["503"]["headers"]
