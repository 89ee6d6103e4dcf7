"""The data directory and every file in it are owner-only (issue 15 point 9), after a real app
start that wrote to each store: keys and audit trail, journal, invoices, originals, registry,
gap ledger, outage log, the bootstrap admin key, and SQLite's -wal and -shm files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import Client, bearer
from tests.factories import package, vn_invoice, vn_key
from tests.verify.test_intake_journal import maintenance, wait_out
from verify.app import create_app
from verify.settings import Settings


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(data: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(data.stat().st_mode)}
    for path in data.rglob("*"):
        found[str(path.relative_to(data))] = stat.S_IMODE(path.stat().st_mode)
    return found


async def exercise(aiohttp_client: Any, data: Path) -> None:
    """Start the real app and write to every store."""
    cli: Client = await aiohttp_client(create_app(Settings.from_env(
        {"INVOICE_DATA_DIR": str(data)})))
    admin = bearer((data / "admin.key").read_text().strip())
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]), headers=admin)
    assert resp.status == 200
    await cli.post("/api/v1/admin/registry", headers=admin, json={"providers": [
        {"provider_id": "0101300842", "name": "T-VAN", "valid_from": "2021-01-01"}]})
    await maintenance(cli, 0.3)
    resp = await cli.get("/api/v1/invoices/lookup", params=vn_key(5), headers=admin)
    assert (await resp.json())["status"] == "unconfirmed"  # a gap, an outage window
    await wait_out(cli)
    assert (await cli.get("/api/v1/admin/audit", headers=admin)).status == 200


async def test_a_fresh_data_directory_is_owner_only(aiohttp_client: Any,
                                                    tmp_path: Path) -> None:
    data = tmp_path / "data"
    with umask(0o022):  # the usual umask: files 0644, directories 0755
        await exercise(aiohttp_client, data)
        found = modes(data)
    assert found["."] == 0o700
    files = {name: mode for name, mode in found.items() if name != "."}
    for expected in ("access.sqlite3", "access.sqlite3-wal", "access.sqlite3-shm",
                     "journal.sqlite3", "invoices.sqlite3", "invoices.sqlite3-wal",
                     "gaps.sqlite3", "outages.sqlite3", "registry.sqlite3", "admin.key"):
        assert expected in files, sorted(files)
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}


async def test_an_existing_open_data_directory_is_tightened(aiohttp_client: Any,
                                                            tmp_path: Path) -> None:
    data = tmp_path / "data"
    with umask(0o022):
        await exercise(aiohttp_client, data)
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)
    with umask(0o022):
        await exercise(aiohttp_client, data)
    found = modes(data)
    assert found.pop(".") == 0o700
    assert {name: mode for name, mode in found.items() if mode != 0o600} == {}
