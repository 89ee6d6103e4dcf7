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
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook",  # fullwidth digits: 127.0.0.1
    "http://10\u30020\u30020\u30025/hook",  # ideographic full stops: 10.0.0.5
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


@pytest.mark.parametrize("url", ["http://127.1/hook", "http://2130706433/hook",
                                 "http://0x7f.1/hook", "http://017700000001/hook",
                                 "http://1572395042/hook"])
async def test_legacy_spellings_of_addresses_are_refused(cli: Client, url: str) -> None:
    """A resolver reads these as IPv4 addresses (the last one is public): refused whatever
    they point at, since the sender could never reach them as written."""
    resp = await cli.get(LOOKUP, params={**KEY, "callback_url": url})
    assert resp.status == 400
    assert "standard" in (await resp.json())["error"]["message"]
