"""INVOICE_EVENT_LOOP: the loop `invoice-verify serve` and its workers run on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvloop

from verify.cli.workers import event_loop
from verify.settings import Settings, SettingsError


def _settings(tmp_path: Path, value: str | None) -> Settings:
    env = {"INVOICE_DATA_DIR": str(tmp_path)}
    if value is not None:
        env["INVOICE_EVENT_LOOP"] = value
    return Settings.from_env(env)


@pytest.mark.parametrize(("value", "kind"), [(None, asyncio.BaseEventLoop),
                                             ("asyncio", asyncio.BaseEventLoop),
                                             ("UVLOOP", uvloop.Loop)])
def test_the_setting_chooses_the_loop(tmp_path: Path, value: str | None, kind: type) -> None:
    loop = event_loop(_settings(tmp_path, value))
    try:
        assert isinstance(loop, kind)
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()


def test_an_unknown_loop_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="INVOICE_EVENT_LOOP"):
        _settings(tmp_path, "trio")
