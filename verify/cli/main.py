"""`invoice-verify`: one entry point for every command; settings come from the environment
and explicit options override them. Each command group lives in a module of its own."""

from __future__ import annotations

import typer

from verify.cli import intake, keys, outages, reconcile, registry, reports, serve
from verify.cli.journal import journal_app
from verify.cli.verify_batch import verify_cmd

app = typer.Typer(
    help="Verify Vietnamese and Chinese e-invoices.", no_args_is_help=True, add_completion=False
)
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


def main() -> None:
    app()
