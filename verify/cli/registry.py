"""`invoice-verify registry import`: the taxpayer and provider registry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from indexer.registry import RegistryError, parse_registry
from verify.cli.common import DataDir, err, load_settings, out
from verify.services import open_services

registry_app = typer.Typer(help="The taxpayer and provider registry the intake rules read.",
                           no_args_is_help=True)


@registry_app.command("import")
def registry_import(file: Annotated[Path, typer.Argument(help="registry .json or .csv")],
                    data_dir: DataDir = None) -> None:
    """Import (upsert) taxpayers and providers; a file with any error changes nothing."""
    settings = load_settings(data_dir=data_dir)
    content_type = "text/csv" if file.suffix.lower() == ".csv" else "application/json"
    try:
        parsed = parse_registry(file.read_bytes(), content_type)
    except (OSError, RegistryError) as exc:
        err.print(f"[red]{file}: {exc}[/]", highlight=False)
        raise typer.Exit(1) from None

    async def load() -> dict[str, int]:
        async with open_services(settings) as services:  # Elasticsearch when configured
            await services.registry.import_registry(parsed)
            return await services.registry.counts()

    totals = asyncio.run(load())
    out.print(f"imported {len(parsed.taxpayers)} taxpayers and {len(parsed.providers)} "
              f"providers; the registry now holds {totals['taxpayers']} taxpayers and "
              f"{totals['providers']} providers", highlight=False)
