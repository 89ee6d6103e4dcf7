"""verify/http/params.py (the one reader of query parameters) and the error middleware's last
resort: aiohttp's own refusals of a malformed request are 4xx, anything else a logged 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import pytest
from aiohttp import ClientPayloadError, web
from multidict import MultiDict, MultiDictProxy

from tests.conftest import Client
from verify.http.errors import QueryError
from verify.http.middlewares import error_middleware
from verify.http.params import read_query


class Colour(Enum):
    RED = "red"


def q(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


def refused(pairs: list[tuple[str, str]], allowed: set[str]) -> QueryError:
    with pytest.raises(QueryError) as caught:
        read_query(q(*pairs), allowed)
    assert caught.value.status == 400
    return caught.value


def test_unknown_then_repeated_names_are_refused() -> None:
    unknown = refused([("limit", "1"), ("colour", "x")], {"limit"})
    assert (unknown.code, unknown.details["parameters"]) == ("unknown_parameter", ["colour"])
    repeated = refused([("limit", "1"), ("limit", "2")], {"limit"})
    assert (repeated.code, repeated.details["parameters"]) == ("repeated_parameter", ["limit"])


@pytest.mark.parametrize("value", ["\x00", "a\x07b", "\ud800", "x" * 2049])
def test_values_that_are_not_storable_text_are_refused(value: str) -> None:
    error = refused([("target", value)], {"target"})
    assert (error.code, error.details["parameter"]) == ("invalid_parameter", "target")


@pytest.mark.parametrize("value", ["²", "①", "٣", "３", "1e3", "-1", "0", "1001",
                                   "9" * 5000, "1.0", "0x10"])
def test_integers_are_ascii_digits_within_bounds(value: str) -> None:
    with pytest.raises(QueryError) as caught:
        read_query(q(("limit", value)), {"limit"}).integer("limit", low=1, high=1000,
                                                            default=100)
    assert caught.value.details["parameter"] == "limit"


def test_good_values_are_read() -> None:
    query = read_query(q(("limit", " 20 "), ("since", "2022-05-15T02:00:00Z"),
                         ("on", "2022-05-15"), ("colour", "red"), ("name", "")),
                       {"limit", "since", "on", "colour", "name", "absent"})
    assert query.integer("limit", low=1, high=1000, default=100) == 20
    assert query.integer("absent", low=1, high=1000, default=100) == 100
    assert query.instant("since") is not None
    assert str(query.day("on")) == "2022-05-15"
    assert query.choice("colour", Colour) is Colour.RED
    assert query.text("name") is None
    assert query.text("absent") is None


@pytest.mark.parametrize(("name", "value"), [
    ("since", "2022-05-15T02:00:00"), ("since", "٢٠٢٢-05-15T02:00:00Z"), ("since", "x" * 50),
    ("on", "20220515"), ("on", "2022-W20-1"), ("on", "٢٠٢٢-٠٥-١٥"), ("colour", "blue")])
def test_bad_dates_times_and_choices_name_the_parameter(name: str, value: str) -> None:
    query = read_query(q((name, value)), {name})
    read = {"since": query.instant, "on": query.day,
            "colour": lambda n: query.choice(n, Colour)}[name]
    with pytest.raises(QueryError) as caught:
        read(name)
    assert caught.value.details["parameter"] == name


AppClient = Callable[..., Awaitable[Client]]


async def _read_multipart(request: web.Request) -> web.Response:
    reader = await request.multipart()
    async for part in reader:
        await part.read(decode=True)  # type: ignore[union-attr]
    return web.json_response({})


async def _bug(request: web.Request) -> web.Response:
    return web.json_response({"x": {}["missing"]})


async def _stream_then_fail(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    await resp.write(b'{"row": 1}\n')
    raise ValueError("a bug after the first line")


@pytest.fixture
async def bare(aiohttp_client: AppClient) -> Client:
    """The real error middleware in front of handlers that read multipart as aiohttp does,
    and one that has a bug."""
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/multipart", _read_multipart)
    app.router.add_get("/bug", _bug)
    app.router.add_get("/stream", _stream_then_fail)
    return await aiohttp_client(app)


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", b"xx"),  # no boundary: ValueError in aiohttp
    ("multipart/form-data; boundary=abc", b"garbage"),
    ("multipart/form-data; boundary=abc",
     b"--abc\r\nContent-Disposition: form-data; name=a\r\n\x00garbage\r\n\r\nxx\r\n--abc--\r\n"),
    ("multipart/form-data; boundary=abc",
     b"--abc\r\nContent-Transfer-Encoding: weird\r\n\r\nxx\r\n--abc--\r\n"),
])
async def test_malformed_multipart_is_400_wherever_it_is_read(
        bare: Client, content_type: str, body: bytes) -> None:
    resp = await bare.post("/multipart", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    error: dict[str, Any] = (await resp.json())["error"]
    assert error["code"] in {"bad_multipart", "bad_request"}


async def test_a_bug_is_a_logged_500_that_says_nothing(
        bare: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="verify.errors"):
        resp = await bare.get("/bug")
    assert resp.status == 500
    assert (await resp.json())["error"]["code"] == "internal_error"
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


@pytest.mark.parametrize("query", [
    "after=6810520547074284453888",  # past SQLite's INTEGER: OverflowError, a 500 before
    "after=²", "after=٣", "limit=①", "limit=1&limit=2", "since=2022-05-15T02:00:00",
    "kind=sometimes", "colour=red"])
async def test_outage_list_refuses_bad_parameters_by_name(cli: Client, query: str) -> None:
    resp = await cli.get(f"/api/v1/outages?{query}")
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] in {"invalid_parameter", "repeated_parameter", "unknown_parameter"}
    named = error["details"].get("parameter") or error["details"]["parameters"][0]
    assert named == query.split("=")[0]


SELLER_Q = "seller_tax_id=0100109106"
#: Every route that takes query parameters, with a valid query for it.
PARAM_ROUTES = [("GET", "/api/v1/admin/audit", "limit=5"), ("GET", "/api/v1/gaps", "limit=5"),
                ("GET", "/api/v1/outages", "limit=5"), ("GET", "/api/v1/journal", "limit=5"),
                ("GET", "/api/v1/invoices/lookup", "number=23442000000014209621"),
                ("GET", "/api/v1/reports/missing", SELLER_Q),
                ("POST", "/api/v1/reports/ledger", "buyer_tax_id=0100109106&year=2022"),
                ("GET", "/api/v1/invoices/vn:0100109106:1:C22TAA:1/qr.png", "size=200")]


@pytest.mark.parametrize(("method", "path", "good"), PARAM_ROUTES)
async def test_every_route_refuses_repeated_and_unknown_parameters_alike(
        cli: Client, method: str, path: str, good: str) -> None:
    names = sorted(pair.split("=")[0] for pair in good.split("&"))
    for query, code in ((f"{good}&{good}", "repeated_parameter"),
                        (f"{good}&colour=red", "unknown_parameter")):
        resp = await cli.request(method, f"{path}?{query}")
        assert resp.status == 400, (query, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == code, (path, error)
        assert error["details"]["parameters"] == (names if code == "repeated_parameter"
                                                  else ["colour"])


async def test_a_bug_in_a_streamed_answer_cuts_it_instead_of_writing_a_second_answer(
        bare: Client, caplog: pytest.LogCaptureFixture) -> None:
    """Before: the middleware's JSON 500 was written into the NDJSON body (the client read
    `HTTP/1.1 500` where a chunk size belonged)."""
    with caplog.at_level(logging.ERROR, logger="verify.errors"):
        resp = await bare.get("/stream")
        assert resp.status == 200
        with pytest.raises(ClientPayloadError):
            await resp.read()
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in caplog.records
               if r.name == "verify.errors")
