"""Every role against every route. Adding a route without an access rule fails here (and
at app creation)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import Client, KeyMaker, bearer
from verify.access.middleware import check_routes
from verify.access.roles import PUBLIC, ROUTE_ACCESS, Role
from verify.app import create_app
from verify.http.openapi import PATHS
from verify.settings import Settings

SAMPLE_PATH_PARAMS = {"key_id": "0123456789ab", "id": "vn:0100109106:1:C22TAA:1", "seq": "1"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The keyless caller asks every route once: more routes than the failed-authentication
    budget of one address (30 a minute), which would answer 429 instead of 401."""
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_RATE_AUTH_FAILURES_PER_MINUTE": "1000"})


def app_routes(settings: Settings) -> list[tuple[str, str, str]]:
    app = create_app(settings)
    routes = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        assert route.name is not None
        routes.append((route.method, path, route.name))
    return routes


def test_every_route_has_an_access_rule_and_every_rule_a_route(settings: Settings) -> None:
    names = {name for _, _, name in app_routes(settings)}
    assert names == set(ROUTE_ACCESS)


def test_an_unclassified_route_is_refused_at_creation(settings: Settings) -> None:
    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    app = create_app(settings)
    app.router.add_get("/api/v1/secret", secret, name="secret")
    with pytest.raises(RuntimeError, match="no access rule"):
        check_routes(app)


def test_openapi_describes_exactly_the_routes(settings: Settings) -> None:
    described = {(method.upper(), path, op["operationId"])
                 for path, ops in PATHS.items() for method, op in ops.items()}
    assert described == set(app_routes(settings))


async def test_openapi_is_served_openly(cli: Client) -> None:
    resp = await cli.get("/openapi.json", headers={"Authorization": ""})
    assert resp.status == 200
    assert (await resp.json())["paths"].keys() == PATHS.keys()


@pytest.mark.parametrize("role", [None, *Role])
async def test_every_role_against_every_route(cli: Client, make_key: KeyMaker,
                                              settings: Settings, role: Role | None) -> None:
    scopes = ["0101300842"] if role is Role.INTAKE else []
    headers = bearer(await make_key(role.value, scopes)) if role else {"Authorization": ""}
    for method, path, name in app_routes(settings):
        url = path.format(**SAMPLE_PATH_PARAMS)
        resp = await cli.request(method, url, headers=headers)
        allowed = ROUTE_ACCESS[name]
        if allowed is PUBLIC:
            expected_denial = None
        elif role is None:
            expected_denial = 401
        elif role is Role.ADMIN or role in allowed:
            expected_denial = None
        else:
            expected_denial = 403
        if expected_denial is None:
            assert resp.status not in (401, 403), (role, method, path, resp.status)
            assert resp.status < 500, (role, method, path, await resp.text())
        else:
            assert resp.status == expected_denial, (role, method, path, resp.status)
            assert (await resp.json())["error"]["code"] in ("unauthorized", "forbidden")
