"""`invoice-verify ingest` (packages from files, as `POST /api/v1/packages`), `recheck`
(step 2 over a month) and `rules` (every intake rule in force)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer

from indexer.package import Package, PackageError
from indexer.recheck import month_bounds, recheck_month
from indexer.rules import RULES, Violation, rules_markdown
from indexer.signature import TrustAnchors
from indexer.submission import BodyFormat, read_submission, signature_violations
from verify.cli.common import DataDir, err, load_settings, open_intake, out, progress_bar
from verify.http.csv_cells import dict_writer
from verify.settings import Settings, SettingsError


def _read_package(
    path: Path,
    settings: Settings,
    anchors: TrustAnchors,
) -> tuple[Package, dict[int, bytes], dict[int, list[Violation]]]:
    """A `.xml` file is a Vietnamese TDiep package, taken like `POST /packages` with
    application/xml: originals kept, seller signatures checked when trust anchors are
    configured (in line: this command serves no one else meanwhile), with the package
    signature of a cash-register package. Other files are JSON, whose Vietnamese invoices
    break `vn.signature.json_unsigned` when trust anchors are configured."""
    fmt = BodyFormat.XML if path.suffix.lower() == ".xml" else BodyFormat.JSON
    submission = read_submission(path.read_bytes(), fmt, max_items=settings.max_package_items)
    signatures = signature_violations(submission, anchors, settings.rules)
    return submission.package, submission.originals, signatures


async def _ingest(
    settings: Settings, files: list[Path], anchors: TrustAnchors | None = None
) -> int:
    failures = 0
    async with open_intake(settings) as intake:
        with progress_bar() as bar:
            task = bar.add_task("ingesting", total=len(files))
            for path in files:
                try:
                    package, originals, signatures = _read_package(
                        path, settings, anchors or TrustAnchors.none()
                    )
                    result = await intake.ingest(package, originals, signatures)
                except (OSError, PackageError) as exc:
                    failures += 1
                    code = getattr(exc, "code", "file_unreadable")
                    bar.console.print(f"[red]{path}: {code}: {exc}[/]", highlight=False)
                else:
                    notice = result.notice
                    state = "already ingested" if result.replayed else notice["result"]
                    bar.console.print(
                        f"{path}: {notice['package_id']} {state}: "
                        f"{notice['accepted']} accepted, "
                        f"{notice['rejected']} rejected",
                        highlight=False,
                    )
                    for item in notice["items"]:
                        for error in item["errors"]:
                            bar.console.print(
                                f"  item {item['index']}: {error['rule']}: {error['message']}",
                                highlight=False,
                            )
                bar.advance(task)
    return failures


def ingest(
    files: Annotated[
        list[Path],
        typer.Argument(help="package files: JSON, or Vietnamese XML (TDiep) named *.xml"),
    ],
    data_dir: DataDir = None,
) -> None:
    """Ingest JSON or XML packages from files, like POST /api/v1/packages; exit 1 if a file
    failed."""
    settings = load_settings(data_dir=data_dir)
    try:
        anchors = settings.load_trust_anchors()
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    failures = asyncio.run(_ingest(settings, files, anchors))
    if failures:
        raise typer.Exit(1)


def recheck_cmd(
    month: Annotated[str, typer.Option(help="YYYY-MM, the month to re-check")],
    out: Annotated[Path | None, typer.Option(help="CSV report (default: standard output)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Step 2 over a month, as the authority's day 1-10 run: registrations and the invoice
    chain re-checked against what is known now. Exit 1 if anything was found."""
    settings = load_settings(data_dir=data_dir)
    try:
        month_bounds(month)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None

    async def run(sink: TextIO) -> tuple[int, int]:
        writer = dict_writer(sink, ["id", "rule", "message", "detail"])
        writer.writeheader()
        checked = found = 0
        async with open_intake(settings) as intake:
            with progress_bar() as bar:
                task = bar.add_task(f"re-checking {month}", total=None)
                async for checked, findings in recheck_month(
                    intake.store, intake.registry, month, settings.rules
                ):
                    for finding in findings:
                        writer.writerow(finding.as_dict())
                    found += len(findings)
                    bar.update(task, completed=checked)
        return checked, found

    if out is None:
        checked, found = asyncio.run(run(sys.stdout))
    else:
        with out.open("w", newline="", encoding="utf-8") as sink:
            checked, found = asyncio.run(run(sink))
    err.print(f"{checked} invoices issued in {month} re-checked: {found} findings", highlight=False)
    if found:
        raise typer.Exit(1)


def list_rules(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="the docs/rules.md table")] = False,
) -> None:
    """List every intake rule with its code, severity in force and spec section."""
    if markdown:
        sys.stdout.write(rules_markdown())
        return

    cfg = load_settings().rules
    rows = [
        {
            "rule": r.code,
            "severity": cfg.severity_of(r.code).value,
            "confirmed": r.confirmed,
            "configurable": r.configurable,
            "spec": r.spec,
            "message": r.message_en,
        }
        for r in RULES.values()
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    for row in rows:
        flag = "" if row["confirmed"] else " (unconfirmed)"
        out.print(f"{row['rule']:<40} {row['severity']:<8} {row['spec']}{flag}", highlight=False)
