"""`invoice-verify`: one entry point for every command; settings come from the environment
and explicit options override them. Each command group lives in a module of its own."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from verify.cli import intake, keys, outages, receipt, reconcile, registry, reports, serve
from verify.cli.common import out
from verify.cli.journal import journal_app
from verify.cli.verify_batch import verify_cmd

#: The distribution whose metadata holds the version (pyproject.toml's `[project] name`).
DISTRIBUTION = "invoice-verify"

# rich_markup_mode=None: help texts are plain text. In Rich's markup the options' environment
# hints, "[env INVOICE_HOST]", are style tags, and were dropped from `--help` without a trace.
app = typer.Typer(
    help="Verify Vietnamese and Chinese e-invoices.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if not asked:
        return
    try:
        out.print(f"{DISTRIBUTION} {version(DISTRIBUTION)}", highlight=False)
    except PackageNotFoundError:  # run from a source tree that was never installed
        out.print(
            f"{DISTRIBUTION}: no version (the package is not installed; "
            "`pip install -e .` installs it)",
            highlight=False,
        )
        raise typer.Exit(1) from None
    raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="print the version (from the installed package's metadata) and exit",
        ),
    ] = False,
) -> None:
    """Verify Vietnamese and Chinese e-invoices."""


app.command()(serve.demo)
app.command()(serve.serve)
app.command()(intake.ingest)
app.command("verify")(verify_cmd)
app.command("recheck")(intake.recheck_cmd)
app.command("rules")(intake.list_rules)
app.add_typer(registry.registry_app, name="registry")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(journal_app, name="journal")
app.add_typer(reports.report_app, name="report")
app.command("reconcile")(reconcile.reconcile_cmd)
app.add_typer(outages.outage_app, name="outage")
app.add_typer(receipt.receipt_app, name="receipt")


def main() -> None:
    app()
