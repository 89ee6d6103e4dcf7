"""The service shell: health, readiness, the error envelope for routing failures."""

from __future__ import annotations

from tests.conftest import Client
from verify.settings import Settings


async def test_healthz(cli: Client) -> None:
    resp = await cli.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_reports_primary(cli: Client) -> None:
    resp = await cli.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {
        "primary": {"backend": "sqlite", "ok": True, "state": "ok"},
        "replica": {"backend": "memory", "ok": True, "state": "ok"}},
        "journal": {"ok": True, "pending": 0, "quarantined": 0}}


async def test_unknown_route_gets_json_envelope(cli: Client) -> None:
    resp = await cli.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"]["code"] == "not_found_route"


async def test_wrong_method_gets_405_with_allow(cli: Client) -> None:
    resp = await cli.delete("/api/v1/packages")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_store_file_lives_in_the_data_dir(cli: Client, settings: Settings) -> None:
    assert (await cli.get("/readyz")).status == 200
    assert settings.sqlite_path.exists()
    assert settings.sqlite_path.parent == settings.data_dir
