"""A lookup's `callback_url` under the default settings: an address that is not globally
routable is refused at once (400), a host name is taken and checked when the callback is
sent (tests/fallback/test_callbacks.py), and the signing secret is checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Client
from verify.settings import Settings, SettingsError

LOOKUP = "/api/v1/invoices/lookup"
KEY = {"seller_tax_id": "0100109106", "template": "1", "series": "C22TAA", "number": "7"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data")})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest",
    "https://[::1]/hook", "http://192.168.1.20/hook",
])
async def test_private_addresses_are_refused(cli: Client, url: str) -> None:
    resp = await cli.get(LOOKUP, params={**KEY, "callback_url": url})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["details"] == {"parameter": "callback_url"}
    assert "private" in body["error"]["message"]


async def test_a_public_address_or_a_host_name_is_taken(cli: Client) -> None:
    for url in ("https://93.184.216.34/hook", "https://erp.example/hooks/gap"):
        resp = await cli.get(LOOKUP, params={**KEY, "callback_url": url})
        assert resp.status == 200, await resp.text()


def test_a_short_signing_secret_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="INVOICE_CALLBACK_SECRET"):
        Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path), "INVOICE_CALLBACK_SECRET": "x"})
    ok = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path),
                            "INVOICE_CALLBACK_SECRET": "k" * 32})
    assert ok.fallback.callback_secret == "k" * 32
    assert "k" * 32 not in repr(ok)  # never printed with the settings
