"""Issue 15: no package can wedge intake. Through the real embedded app (SQLite primary, real
journal file): the five intake inputs of the issue are answered and the next package still
reaches the primary; an entry that fails to apply for a reason other than the primary being
down is tried `INVOICE_JOURNAL_MAX_ATTEMPTS` times, quarantined with a final notice, listed,
retried after a fix or dropped, and a restart keeps all of it; in the reconciler, a poison
entry no longer holds back the good entries queued behind it; a journal file written by an
older release (schema v0) is migrated and its poison entry settled.

The poison is real, not a mock: a package record in the primary that this release cannot
read (its receipt time is not a date, as a hand edit or an older release could leave it),
so every apply of a package with that id raises ValueError inside the store's read."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from indexer.submission import BodyFormat, read_submission
from tests.conftest import Client
from tests.factories import SELLER_2, package, vn_invoice, vn_key
from tests.metrics_text import samples
from tests.verify.test_intake_journal import (
    lookup,
    maintenance,
    now,
    post,
    reconcile,
    settings,
    wait_out,
)
from verify.app import create_app
from verify.cli.main import app as cli_app
from verify.settings import Settings

__all__ = ["settings"]  # the fixture, shared with the journal's other tests

JOURNAL = "/api/v1/journal"
OTHER_SENDER = "0102671977"


def poison_primary(settings: Settings, package_id: str) -> None:
    """A package record the store cannot read back (`received_at` is not a date)."""
    with sqlite3.connect(settings.sqlite_path) as conn:
        conn.execute("INSERT INTO packages (package_id, sender, digest, received_at, notice)"
                     " VALUES (?, '0101300842', 'x', 'not a date', '{}')", (package_id,))


def heal_primary(settings: Settings, package_id: str) -> None:
    with sqlite3.connect(settings.sqlite_path) as conn:
        conn.execute("DELETE FROM packages WHERE package_id = ?", (package_id,))


async def quarantined(cli: Client) -> list[dict[str, Any]]:
    resp = await cli.get(JOURNAL, params={"state": "quarantined"})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    entries: list[dict[str, Any]] = body["entries"]
    return entries


def unprocessable(notice: dict[str, Any]) -> bool:
    return (notice["result"] == "rejected"
            and notice["error"]["code"] == "package.unprocessable")


def good(number: int, **over: Any) -> dict[str, Any]:
    """A package of another sender with one valid invoice of another seller."""
    body = package([vn_invoice(number, seller_tax_id=SELLER_2)], **over)
    body["sender"] = OTHER_SENDER
    return body


async def lookup_2(cli: Client, number: int) -> dict[str, Any]:
    resp = await cli.get("/api/v1/invoices/lookup",
                         params={k: str(v) for k, v in vn_key(number,
                                                              seller_tax_id=SELLER_2).items()})
    body: dict[str, Any] = await resp.json()
    return body


@pytest.mark.parametrize("poison", [
    {"amount_before_tax": "1e999999"}, {"number": "9" * 4301}, {"currency": " "},
    {"total_amount": "1E+999999999"}, {"declared_count": 2**64},
])
async def test_each_intake_input_of_the_issue_is_answered_and_intake_stays_live(
        cli: Client, poison: dict[str, Any]) -> None:
    body = package([vn_invoice(1)])
    if "declared_count" in poison:
        body.update(poison)
    else:
        body["invoices"][0].update(poison)
    status, notice = await post(cli, body)
    assert status in (200, 422), notice  # an item violation, or the envelope refused
    if status == 200:
        assert notice["items"][0]["result"] == "rejected"
    code, accepted = await post(cli, good(2))
    assert (code, accepted["result"]) == (200, "accepted"), accepted
    assert (await lookup_2(cli, 2))["status"] == "valid"
    run = await (await cli.get("/api/v1/reconcile/status")).json()
    assert run["journal"]["pending"] == 0
    assert run["run"]["errors"] == []


async def test_an_entry_that_keeps_failing_is_quarantined_and_blocks_nothing(
        cli: Client, settings: Settings,
        aiohttp_client: Callable[..., Awaitable[Client]], admin_token: str) -> None:
    poison_primary(settings, "POISON-1")
    status, notice = await post(cli, package([vn_invoice(3)], package_id="POISON-1"))
    assert status == 200, notice
    assert unprocessable(notice), notice
    assert notice["error"]["details"] == {"error": "ValueError", "attempts": 3}

    code, accepted = await post(cli, good(4))  # straight to the primary, not queued
    assert (code, accepted["result"]) == (200, "accepted")
    listed = await quarantined(cli)
    assert [(e["package_id"], e["attempts"], e["state"]) for e in listed] == [
        ("POISON-1", 3, "quarantined")]
    assert listed[0]["last_error"].startswith("ValueError")
    run = await (await cli.get("/api/v1/reconcile/status")).json()
    assert run["journal"]["quarantined"] == 1
    assert run["journal"]["pending"] == 0
    metrics = samples(await (await cli.get("/metrics")).text())
    assert metrics['invoice_journal_entries{state="quarantined"}'] == 1
    ready = await (await cli.get("/readyz")).json()
    assert (ready["status"], ready["journal"]) == (
        "ready", {"ok": True, "pending": 0, "quarantined": 1})
    again, replayed = await post(cli, package([vn_invoice(3)], package_id="POISON-1"))
    assert again == 200
    assert unprocessable(replayed)

    # a restart keeps the quarantine as it was
    restarted = await aiohttp_client(create_app(settings),
                                     headers={"Authorization": f"Bearer {admin_token}"})
    assert [e["seq"] for e in await quarantined(restarted)] == [listed[0]["seq"]]

    # the operator fixes the cause and retries: applied by the next run
    heal_primary(settings, "POISON-1")
    resp = await restarted.post(f"{JOURNAL}/{listed[0]['seq']}/retry")
    assert resp.status == 200, await resp.text()
    assert await quarantined(restarted) == []
    status_body = await reconcile(restarted)
    assert status_body["journal"]["quarantined"] == 0
    assert status_body["run"]["journal_applied"] == 1
    assert (await lookup(restarted, 3))["status"] == "valid"
    final_code, final = await post(restarted, package([vn_invoice(3)], package_id="POISON-1"))
    assert (final_code, final["result"]) == (200, "accepted")


async def test_a_quarantined_entry_can_be_dropped_and_its_id_used_again(
        cli: Client, settings: Settings) -> None:
    poison_primary(settings, "POISON-2")
    _, notice = await post(cli, package([vn_invoice(5)], package_id="POISON-2"))
    assert unprocessable(notice)
    [entry] = await quarantined(cli)
    assert (await cli.post(f"{JOURNAL}/{entry['seq'] + 1000}/retry")).status == 404
    assert (await cli.delete(f"{JOURNAL}/{entry['seq']}")).status == 200
    assert (await cli.delete(f"{JOURNAL}/{entry['seq']}")).status == 404
    assert await quarantined(cli) == []
    heal_primary(settings, "POISON-2")
    code, accepted = await post(cli, package([vn_invoice(6)], package_id="POISON-2"))
    assert (code, accepted["result"]) == (200, "accepted")


async def test_the_journal_routes_refuse_bad_parameters(cli: Client) -> None:
    for query in ({"state": "stuck"}, {"limit": "0"}, {"limit": "²"}, {"after": "-1"}):
        assert (await cli.get(JOURNAL, params=query)).status == 400, query
    assert (await cli.post(f"{JOURNAL}/①/retry")).status == 400
    assert (await cli.delete(f"{JOURNAL}/{'9' * 4301}")).status == 400


async def test_in_the_reconciler_a_poison_entry_does_not_hold_back_those_behind_it(
        cli: Client, settings: Settings) -> None:
    await maintenance(cli, 0.5)
    queued = [good(10), package([vn_invoice(11)], package_id="POISON-3"), good(12), good(13)]
    poison_primary(settings, "POISON-3")
    for body in queued:
        code, notice = await post(cli, body)
        assert (code, notice["result"]) == (202, "queued"), notice
    await wait_out(cli)
    status = await reconcile(cli)
    assert status["journal"] == {"pending": 0, "applied": 3, "quarantined": 1}
    assert (status["run"]["journal_applied"], status["run"]["journal_quarantined"]) == (3, 1)
    assert status["run"]["errors"] == []
    assert status["run"]["stopped_by"] is None
    for number in (10, 12, 13):
        answer = await lookup_2(cli, number)
        assert (answer["status"], answer["source"]) == ("valid", "primary")
    # the poison entry's queued invoice no longer answers from the journal
    assert (await lookup(cli, 11))["status"] == "not_found"
    _, replayed = await post(cli, queued[1])
    assert unprocessable(replayed)


_V0_JOURNAL = """
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, package_id TEXT NOT NULL UNIQUE,
    sender TEXT NOT NULL, digest TEXT NOT NULL, format TEXT NOT NULL, body BLOB NOT NULL,
    received_at TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'applied')),
    notice TEXT, applied_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE INDEX entries_pending ON entries (seq) WHERE state = 'pending';
CREATE INDEX entries_applied ON entries (applied_at) WHERE state = 'applied';
CREATE TABLE pending_docs (seq INTEGER NOT NULL REFERENCES entries (seq),
    doc_id TEXT NOT NULL, authority_code TEXT, doc TEXT NOT NULL,
    PRIMARY KEY (seq, doc_id)) WITHOUT ROWID;
"""


async def test_an_older_releases_journal_with_a_poison_entry_is_migrated_and_drained(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
        admin_token: str) -> None:
    """The journal of a release before this fix: the `1e999999` package pending, with the
    attempts its reconciler counted on every run, and a good package stuck behind it."""
    settings.journal_path.parent.mkdir(parents=True, exist_ok=True)
    bodies = [package([vn_invoice(20, amount_before_tax="1e999999")], package_id="OLD-1"),
              package([vn_invoice(21)], package_id="OLD-2")]
    with sqlite3.connect(settings.journal_path) as conn:
        conn.executescript(_V0_JOURNAL)
        for body in bodies:
            raw = json.dumps(body).encode()
            parsed = read_submission(raw, BodyFormat.JSON, max_items=10).package
            conn.execute("INSERT INTO entries (package_id, sender, digest, format, body,"
                         " received_at, state, attempts, last_error) VALUES"
                         " (?, ?, ?, 'json', ?, ?, 'pending', 41, 'Overflow()')",
                         (parsed.package_id, parsed.sender, parsed.digest, raw,
                          now().isoformat()))
    cli = await aiohttp_client(create_app(settings),
                               headers={"Authorization": f"Bearer {admin_token}"})
    status = await reconcile(cli)
    assert status["journal"] == {"pending": 0, "applied": 2, "quarantined": 0}
    assert status["run"]["errors"] == []
    _, first = await post(cli, bodies[0])
    assert first["items"][0]["errors"][0]["rule"] == "invoice.amount.invalid"
    assert (await lookup(cli, 21))["status"] == "valid"
    with sqlite3.connect(settings.journal_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def invoke(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli_app, ["journal", *args, "--data-dir", str(settings.data_dir)])


async def test_the_cli_lists_retries_and_drops_quarantined_entries(
        cli: Client, settings: Settings) -> None:
    for package_id, number in (("POISON-4", 30), ("POISON-5", 31)):
        poison_primary(settings, package_id)
        _, notice = await post(cli, package([vn_invoice(number)], package_id=package_id))
        assert unprocessable(notice)
    listed = await asyncio.to_thread(invoke, settings, "list")
    assert listed.exit_code == 0, listed.output
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["package_id"], e["state"], e["attempts"]) for e in entries] == [
        ("POISON-4", "quarantined", 3), ("POISON-5", "quarantined", 3)]
    heal_primary(settings, "POISON-4")
    retried = await asyncio.to_thread(invoke, settings, "retry", str(entries[0]["seq"]))
    assert retried.exit_code == 0, retried.output
    dropped = await asyncio.to_thread(invoke, settings, "drop", str(entries[1]["seq"]))
    assert dropped.exit_code == 0, dropped.output
    missing = await asyncio.to_thread(invoke, settings, "drop", str(entries[1]["seq"]))
    assert missing.exit_code == 1
    assert await quarantined(cli) == []  # the service reads the file the CLI changed
    status = await reconcile(cli)
    assert status["journal"] == {"pending": 0, "applied": 1, "quarantined": 0}
    assert (await lookup(cli, 30))["status"] == "valid"


async def test_an_unreadable_journal_row_is_quarantined_and_the_queue_goes_on(
        cli: Client, settings: Settings) -> None:
    """A row this release cannot read (a body format it does not know, a receipt time that
    is not ISO 8601, as another release or a hand edit could leave it), pending between
    queued packages: it used to fail every read of the pending page, so nothing behind it
    was ever applied."""
    await maintenance(cli, 0.5)
    assert (await post(cli, good(40)))[0] == 202
    with sqlite3.connect(settings.journal_path) as conn:
        conn.execute("INSERT INTO entries (package_id, sender, digest, format, body,"
                     " received_at, state) VALUES ('ODD-1', '0101300842', 'x', 'cbor',"
                     " x'a0', 'yesterday', 'pending')")
    assert (await post(cli, good(41)))[0] == 202
    await wait_out(cli)
    status = await reconcile(cli)
    assert status["journal"] == {"pending": 0, "applied": 2, "quarantined": 1}
    assert status["run"]["errors"] == []
    for number in (40, 41):
        assert (await lookup_2(cli, number))["status"] == "valid"
    [entry] = await quarantined(cli)
    assert (entry["package_id"], entry["attempts"]) == ("ODD-1", 3)
    assert entry["last_error"].startswith("UnreadableEntryError")
    assert "format" in entry["unreadable"]
    assert "received_at" in entry["unreadable"]
    assert (await cli.delete(f"{JOURNAL}/{entry['seq']}")).status == 200
