"""`invoice-verify keys create|list|revoke`: API keys, in the data directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Annotated

import typer

from verify.access.apikeys import ApiKeyError, KeyRecord, KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.cli.common import DataDir, err, load_settings, out
from verify.settings import Settings

keys_app = typer.Typer(help="Create, list and revoke API keys (in the data directory).",
                       no_args_is_help=True)


@contextlib.asynccontextmanager
async def _key_store(settings: Settings) -> AsyncIterator[KeyStore]:
    async with open_access_db(settings.access_path) as conn:
        yield KeyStore(conn)


@keys_app.command("create")
def keys_create(role: Annotated[Role, typer.Option(help="intake, verify, audit or admin")],
                scope: Annotated[list[str] | None, typer.Option(
                    help="tax id (provider id for intake) the key is limited to; repeatable")
                ] = None,
                name: Annotated[str, typer.Option(help="who or what holds the key")] = "",
                data_dir: DataDir = None) -> None:
    """Create a key and print its token (shown once; only a hash is stored)."""
    settings = load_settings(data_dir=data_dir)

    async def create() -> tuple[str, KeyRecord]:
        async with _key_store(settings) as keys:
            return await keys.create(role, scope or [], name, created_by="cli")

    try:
        token, record = asyncio.run(create())
    except ApiKeyError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    err.print(f"created {record.role.value} key {record.key_id}; the token is shown once:")
    sys.stdout.write(token + "\n")


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (ids, roles, scopes; never secrets)."""
    settings = load_settings(data_dir=data_dir)

    async def listing() -> list[KeyRecord]:
        async with _key_store(settings) as keys:
            return await keys.list()

    sys.stdout.write(json.dumps([r.public() for r in asyncio.run(listing())],
                                ensure_ascii=False, indent=2) + "\n")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key by id (takes effect within the key cache time, 5 s)."""
    settings = load_settings(data_dir=data_dir)

    async def revoke() -> KeyRecord:
        async with _key_store(settings) as keys:
            return await keys.revoke(key_id)

    try:
        record = asyncio.run(revoke())
    except ApiKeyError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    out.print(f"revoked {record.key_id} ({record.role.value}) at {record.revoked_at}")
