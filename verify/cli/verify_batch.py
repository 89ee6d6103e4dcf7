"""`invoice-verify verify --batch`: a batch of lookups answered as `POST
/api/v1/verify/batch` answers them."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from fallback.lookup.query import LookupQuery
from fallback.lookup.resilience import Resilience
from verify.cli.common import REQUESTER, DataDir, err, load_settings, progress_bar
from verify.http.csv_cells import dict_writer
from verify.http.errors import ApiError
from verify.lookup.batch import CSV_COLUMNS, Verifier, answer_rows, csv_row, parse_rows
from verify.lookup.facts import AnswerFacts
from verify.services import open_services


def verify_cmd(batch: Annotated[Path, typer.Option(
                   "--batch", help="CSV (one column per lookup parameter) or JSON list")],
               out: Annotated[Path | None, typer.Option(
                   help="CSV of answers (default: standard output)")] = None,
               data_dir: DataDir = None) -> None:
    """Verify a batch of invoices as POST /api/v1/verify/batch does (the intake journal, the
    primary, the replica and the outage windows of the data directory); one CSV row per
    input row. A miss that cannot be confirmed records its gap (requester `cli`)."""
    settings = load_settings(data_dir=data_dir)
    content_type = "text/csv" if batch.suffix.lower() == ".csv" else "application/json"
    try:
        rows = parse_rows(batch.read_bytes(), content_type)
    except OSError as exc:
        err.print(f"[red]{batch}: {exc}[/]", highlight=False)
        raise typer.Exit(1) from None
    except ApiError as exc:
        err.print(f"[red]{batch}: {exc.code}: {exc.message}[/]", highlight=False)
        raise typer.Exit(1) from None

    async def run(sink: TextIO) -> Counter[str]:
        writer = dict_writer(sink, CSV_COLUMNS)
        writer.writeheader()
        tally: Counter[str] = Counter()
        async with open_services(settings) as services:
            with progress_bar() as bar:
                task = bar.add_task("verifying", total=len(rows))
                facts = AnswerFacts.of(settings, services.registry)
                async for result in answer_rows(rows, settings.rules,
                                                cli_verifier(services.resilience, facts)):
                    writer.writerow(csv_row(result))
                    tally[result.get("status") or result["error"]["code"]] += 1
                    bar.advance(task)
        return tally

    if out is None:
        tally = asyncio.run(run(sys.stdout))
    else:
        with out.open("w", newline="", encoding="utf-8") as sink:
            tally = asyncio.run(run(sink))
    err.print(f"{len(rows)} rows: " + ", ".join(f"{k} {n}" for k, n in tally.most_common()),
              highlight=False)


def cli_verifier(resilience: Resilience, facts: AnswerFacts) -> Verifier:
    """A lookup answered as the service answers it (`Resilience.answer`, then the window and
    the seller's status: `verify.lookup.facts`), unredacted, any gap recorded for requester
    `cli` (`invoice-verify verify --batch`)."""

    async def verify(query: LookupQuery) -> dict[str, Any]:
        answer, invoice = await resilience.answer(query, REQUESTER)
        return await facts.one(answer, query, invoice)

    return verify
