"""Watches (docs/watches.md) through the real app (SQLite primary, real journal, gap ledger and
watch files, a real HTTP receiver on 127.0.0.1): a watched invoice cancelled through a later
package is one event and one signed callback, also when the cancellation was queued during
a maintenance window and applied by the reconciler, and also when the package comes again;
`watch=true` on a lookup or a batch watches the answered invoice; an unconfirmed answer's
gap, once resolved, is an event; a second key sees nothing of the first's; limits refuse."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fallback.callbacks import CallbackPolicy
from tests.conftest import Client, KeyMaker, bearer
from tests.factories import (
    BUYER,
    authority_code,
    cancel,
    cn_digital,
    package,
    vn_invoice,
    vn_key,
)
from tests.fallback import test_callbacks
from tests.fallback.test_callbacks import Receiver
from tests.ledgers import csv_bytes
from tests.verify.test_intake_journal import maintenance, reconcile, wait_out
from verify.keys import SERVICES
from verify.services import callback_policy
from verify.settings import Settings
from verify.watches.delivery import WatchDelivery
from verify.watches.events import WatchHook
from verify.watches.model import CHANGED, Change
from verify.watches.store import open_watch_store

WATCHES = "/api/v1/watches"
EVENTS = "/api/v1/watches/events"
LOOKUP = "/api/v1/invoices/lookup"
SECRET = "w" * 40
DOC_1 = "vn:0100109106:1:C22TAA:1"
#: A real HTTP receiver on 127.0.0.1 (the gap callbacks' test fixture): `{base}/hook`.
receiver = test_callbacks.receiver


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Signed callbacks to the receiver on 127.0.0.1; gaps resolve at once (no grace); the
    reconciler runs only when a test asks."""
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_CALLBACK_SECRET": SECRET,
                              "INVOICE_CALLBACK_ALLOW_PRIVATE": "1",
                              "INVOICE_GAP_GRACE_HOURS": "0",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600",
                              "INVOICE_WATCHES_PER_KEY": "3"})


async def ingest(cli: Client, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await cli.post("/api/v1/packages", json=body)
    assert resp.status == status, await resp.text()
    notice: dict[str, Any] = await resp.json()
    return notice


async def events(cli: Client, token: str, **params: str) -> list[dict[str, Any]]:
    """The feed once the background fan-out recorded every change committed so far (a
    liveness bound, not a speed check): what a commit made shows, and what it did not make
    is not merely late."""
    app = cli.server.app
    assert app is not None
    hook = app[SERVICES].watches
    assert hook is not None
    async with asyncio.timeout(60):
        await hook.drained()
    resp = await cli.get(EVENTS, params=params, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    found: list[dict[str, Any]] = (await resp.json())["events"]
    return found


async def watch(cli: Client, token: str, keys: list[Any], **extra: Any) -> dict[str, Any]:
    resp = await cli.post(WATCHES, json={"keys": keys, **extra}, headers=bearer(token))
    body: dict[str, Any] = await resp.json()
    body["status"] = resp.status
    return body


async def one_callback(cli: Client, got: Receiver) -> dict[str, Any]:
    """The callback that arrived (within a liveness bound, not a speed check), and no other
    one due: a delivery round run now sends nothing more."""
    for _ in range(1500):  # at most 30 s: a liveness bound, not a speed check
        if got.bodies:
            break
        await asyncio.sleep(0.02)
    app = cli.server.app
    assert app is not None
    hook = app[SERVICES].watches
    assert hook is not None
    again = await WatchDelivery(hook.store, callback_policy(app[SERVICES].settings)).deliver_due()
    assert (again.sent, again.failed) == (0, 0)
    assert len(got.bodies) == 1
    (body,), (header,) = got.bodies, got.signatures
    assert header is not None
    stamp, mac = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    sent: dict[str, Any] = orjson.loads(body)
    return sent


async def test_a_cancellation_through_a_later_package_is_one_event_and_one_callback(
        cli: Client, make_key: KeyMaker, receiver: Receiver) -> None:
    await ingest(cli, package([vn_invoice(1), vn_invoice(2)]))
    token = await make_key("verify")
    made = await watch(cli, token, [vn_key(1), DOC_1], days=30,
                       callback_url=f"{receiver.base}/hook")
    assert made["status"] == 201, made
    assert [w["key"] for w in made["watches"]] == [DOC_1, DOC_1]
    assert made["watches"][0]["id"] == made["watches"][1]["id"]  # one watch per key
    by_code = await watch(cli, token, [f"authority_code:{authority_code(1)}"])
    assert by_code["watches"][0]["callback_url"] is None
    cancelling = package([vn_invoice(3)], [cancel(1, notice_id="04SS-2026-0042")])
    await ingest(cli, cancelling)
    await ingest(cli, cancelling)  # the same package again: a replay, no new change
    sent = await one_callback(cli, receiver)
    assert (sent["event"], sent["invoice_id"], sent["status"]) == (
        "invoice.changed", DOC_1, "cancelled")
    assert sent["by"]["notice_id"] == "04SS-2026-0042"
    assert not {"buyer_tax_id", "buyer_name"} & sent.keys()
    for _ in range(1500):  # the POST arrived; its outcome is recorded right after
        feed = await events(cli, token)
        if any(e["callback"] and e["callback"]["state"] == "sent" for e in feed):
            break
        await asyncio.sleep(0.02)
    # one per watch: the invoice id's and the authority code's (the code's has no callback)
    assert sorted((e["key"], e["status"]) for e in feed) == [
        (f"authority_code:{authority_code(1)}", "cancelled"), (DOC_1, "cancelled")]
    assert sent["id"] in {e["id"] for e in feed}
    assert "callback" not in sent
    by_id = {e["key"]: e["callback"] for e in feed}
    assert by_id[f"authority_code:{authority_code(1)}"] is None  # no callback_url
    assert (by_id[DOC_1]["state"], by_id[DOC_1]["attempts"]) == ("sent", 1)
    assert await events(cli, token, key=f"authority_code:{authority_code(1)}") == [
        e for e in feed if e["key"].startswith("authority_code:")]
    assert await events(cli, token, after=feed[-1]["cursor"]) == []


async def test_a_cancellation_queued_in_a_maintenance_window_is_noticed_when_applied(
        cli: Client, make_key: KeyMaker, receiver: Receiver) -> None:
    await ingest(cli, package([vn_invoice(1)]))
    token = await make_key("verify")
    params = {**vn_key(1), "watch": "true", "callback_url": f"{receiver.base}/hook"}
    resp = await cli.get(LOOKUP, params=params, headers=bearer(token))
    answer = await resp.json()
    assert resp.status == 200, answer
    assert (answer["status"], answer["watch"]["key"]) == ("valid", DOC_1)
    await maintenance(cli, 1.0)
    notice = await ingest(cli, package([], [cancel(1)]), status=202)
    assert notice["result"] == "queued"
    assert await events(cli, token) == []  # queued, not applied: nothing changed yet
    await wait_out(cli)
    status = await reconcile(cli)
    assert status["run"]["journal_applied"] == 1
    await reconcile(cli)  # a second run finds nothing new to tell
    sent = await one_callback(cli, receiver)
    assert (sent["watch_id"], sent["status"]) == (answer["watch"]["id"], "cancelled")
    assert [e["id"] for e in await events(cli, token)] == [sent["id"]]


async def test_an_unconfirmed_answer_watched_is_told_when_its_gap_resolves(
        cli: Client, make_key: KeyMaker) -> None:
    token = await make_key("verify")
    await maintenance(cli, 1.0)
    await ingest(cli, package([vn_invoice(5)]), status=202)
    resp = await cli.get(LOOKUP, params={**vn_key(6), "watch": "true"}, headers=bearer(token))
    answer = await resp.json()
    assert answer["status"] == "unconfirmed"
    assert answer["watch"]["key"] == "vn:0100109106:1:C22TAA:6"
    await wait_out(cli)
    await reconcile(cli)
    (event,) = await events(cli, token)
    assert (event["event"], event["gap_id"], event["resolution"], event["status"]) == (
        "gap.resolved", answer["gap_id"], "missing", "not_found")


async def test_a_second_key_sees_nothing_of_the_first_keys_watches(
        cli: Client, make_key: KeyMaker) -> None:
    await ingest(cli, package([vn_invoice(1)]))
    first, second = await make_key("verify"), await make_key("audit")
    made = await watch(cli, first, [DOC_1])
    watch_id = made["watches"][0]["id"]
    await ingest(cli, package([], [cancel(1)]))
    assert len(await events(cli, first)) == 1
    assert await events(cli, second) == []
    assert await events(cli, second, key=DOC_1) == []
    listed = await (await cli.get(WATCHES, headers=bearer(second))).json()
    assert listed["watches"] == []
    resp = await cli.delete(f"{WATCHES}/{watch_id}", headers=bearer(second))
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "watch_not_found")
    mine = await (await cli.get(WATCHES, headers=bearer(first))).json()
    assert [w["id"] for w in mine["watches"]] == [watch_id]
    resp = await cli.delete(f"{WATCHES}/{watch_id}", headers=bearer(first))
    assert resp.status == 200
    assert (await (await cli.get(WATCHES, headers=bearer(first))).json())["watches"] == []


async def test_a_deleted_watch_is_told_nothing(cli: Client, make_key: KeyMaker) -> None:
    await ingest(cli, package([vn_invoice(1)]))
    token = await make_key("verify")
    watch_id = (await watch(cli, token, [DOC_1]))["watches"][0]["id"]
    assert (await cli.delete(f"{WATCHES}/{watch_id}", headers=bearer(token))).status == 200
    await ingest(cli, package([], [cancel(1)]))
    assert await events(cli, token) == []


async def test_limits_refuse_clearly_and_are_audited(cli: Client, make_key: KeyMaker) -> None:
    await ingest(cli, package([vn_invoice(n) for n in range(1, 6)]))
    token = await make_key("verify")
    refused = await watch(cli, token, [vn_key(n) for n in range(1, 5)])
    assert refused["status"] == 409
    assert refused["error"]["code"] == "watch_limit_reached"
    assert refused["error"]["details"] == {"limit": 3, "active": 0, "asked": 4}
    assert (await (await cli.get(WATCHES, headers=bearer(token))).json())["watches"] == []
    assert (await watch(cli, token, [vn_key(1), vn_key(2)]))["status"] == 201
    assert (await watch(cli, token, [vn_key(2)]))["status"] == 201  # a renewal takes no room
    resp = await cli.get(LOOKUP, params={**vn_key(3), "watch": "1"}, headers=bearer(token))
    assert (await resp.json())["watch"]["key"] == "vn:0100109106:1:C22TAA:3"
    resp = await cli.get(LOOKUP, params={**vn_key(4), "watch": "true"}, headers=bearer(token))
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "watch_limit_reached")
    resp = await cli.get("/api/v1/admin/audit", params={"action": "watch.create"})
    outcomes = [e["outcome"] for e in (await resp.json())["entries"]]
    assert outcomes.count("watch_limit_reached") == 2
    assert "vn:0100109106:1:C22TAA:3" in outcomes


async def test_watch_true_on_a_batch_watches_each_answered_invoice(
        cli: Client, make_key: KeyMaker) -> None:
    await ingest(cli, package([vn_invoice(n) for n in range(1, 6)]))
    token = await make_key("verify")
    rows = [{k: str(v) for k, v in vn_key(n).items()} for n in (1, 2, 9, 3, 4)]
    resp = await cli.post("/api/v1/verify/batch?watch=true", json=rows, headers=bearer(token))
    answers = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert [a["status"] for a in answers] == ["valid", "valid", "not_found", "valid", "valid"]
    assert [a["watch"] and a["watch"]["key"][-2:] for a in answers] == [
        ":1", ":2", None, ":3", None]  # nothing to watch for 9; the limit (3) reached at 4
    assert answers[4]["watch_error"]["code"] == "watch_limit_reached"
    await ingest(cli, package([], [cancel(2)]))
    assert [e["invoice_id"] for e in await events(cli, token)] == ["vn:0100109106:1:C22TAA:2"]


async def test_watch_true_on_a_ledger_check_watches_each_answered_line(
        cli: Client, make_key: KeyMaker) -> None:
    """As a batch: each line's answer carries its watch, a line past the key's limit its
    `watch_error`, and the lines after it are still checked."""
    await ingest(cli, package([vn_invoice(n) for n in range(1, 6)]))
    token = await make_key("audit", [BUYER])
    header = ["seller_tax_id", "template", "series", "number", "issued_on", "amount",
              "tax_amount", "total_amount"]
    rows = [["0100109106", "1", "C22TAA", n, "2022-05-15", "1000000", "100000", "1100000"]
            for n in (1, 2, 9, 3, 4, 5)]
    params = {"buyer_tax_id": BUYER, "from": "2022-05-01", "to": "2022-05-31",
              "watch": "true"}
    resp = await cli.post("/api/v1/reports/ledger", params=params,
                          data=csv_bytes(header, rows),
                          headers={"Content-Type": "text/csv", **bearer(token)})
    body = await resp.json()
    assert resp.status == 200, body
    lines = body["lines"]
    assert [ln["status"] for ln in lines] == ["valid", "valid", "not_found", "valid",
                                              "valid", "valid"]
    assert [ln["watch"] and ln["watch"]["key"][-2:] for ln in lines] == [
        ":1", ":2", None, ":3", None, None]  # nothing to watch for 9; the limit (3) at 4
    assert [ln.get("watch_error", {}).get("code") for ln in lines[4:]] == [
        "watch_limit_reached"] * 2
    listed = await (await cli.get(WATCHES, headers=bearer(token))).json()
    assert sorted(w["key"][-2:] for w in listed["watches"]) == [":1", ":2", ":3"]
    await ingest(cli, package([], [cancel(2)]))
    assert [e["invoice_id"] for e in await events(cli, token)] == ["vn:0100109106:1:C22TAA:2"]
    resp = await cli.post("/api/v1/reports/ledger", params={**params, "format": "csv"},
                          data=csv_bytes(header, rows),
                          headers={"Content-Type": "text/csv", **bearer(token)})
    assert (resp.status, (await resp.json())["error"]["code"]) == (
        400, "invalid_parameter")


@pytest.mark.parametrize(("body", "code"), [
    ({"keys": []}, "invalid_body"),
    ({"keys": ["not-an-id"]}, "invalid_watch_key"),
    ({"keys": [{"seller_tax_id": "0100109106"}]}, "invalid_watch_key"),
    ({"keys": [DOC_1], "days": 400}, "invalid_body"),
    ({"keys": [DOC_1], "callback_url": "ftp://example.com/"}, "invalid_parameter"),
])
async def test_bad_watch_requests_are_refused(cli: Client, make_key: KeyMaker,
                                              body: dict[str, Any], code: str) -> None:
    token = await make_key("verify")
    resp = await cli.post(WATCHES, json=body, headers=bearer(token))
    assert resp.status in (400, 422)
    assert (await resp.json())["error"]["code"] == code


async def test_intake_keys_may_not_watch(cli: Client, make_key: KeyMaker) -> None:
    token = await make_key("intake", ["0101300842"])
    assert (await cli.get(WATCHES, headers=bearer(token))).status == 403


async def test_a_red_letter_invoice_is_an_adjustment_said_so(
        cli: Client, make_key: KeyMaker) -> None:
    original = cn_digital()
    await ingest(cli, package([original]))
    token = await make_key("verify")
    doc_id = f"cn:{original['invoice_number']}"
    assert (await watch(cli, token, [{"number": original["invoice_number"]}]))[
        "watches"][0]["key"] == doc_id
    negated = {f: str(-Decimal(original[f]))
               for f in ("amount_before_tax", "tax_amount", "total_amount")}
    red = {**cn_digital("23442000000014209999"), **negated, "kind": "adjustment",
           "original": {"invoice_number": original["invoice_number"]},
           "issued_at": "2023-02-16T11:00:00+08:00"}
    assert (await ingest(cli, package([red])))["accepted"] == 1
    (event,) = await events(cli, token)
    # adjusted, or reversed where the chain rules tell a red-letter invoice's effect apart
    assert event["status"] in {"adjusted", "reversed"}
    assert (event["red_letter"], event["by"]["invoice_id"]) == (True, "cn:23442000000014209999")


async def test_the_same_change_committed_again_is_one_event(
        cli: Client, make_key: KeyMaker) -> None:
    """What a journal entry applied by two reconcilers, or a retried commit, hands the hook:
    the same invoices twice."""
    await ingest(cli, package([vn_invoice(1)]))
    token = await make_key("verify")
    await watch(cli, token, [DOC_1])
    await ingest(cli, package([], [cancel(1)]))
    app = cli.server.app
    assert app is not None
    services = app[SERVICES]
    assert services.watches is not None
    cancelled = (await services.store.get_invoices([DOC_1]))[DOC_1]
    await services.watches([cancelled])
    await services.intake.after_commit([cancelled])
    assert len(await events(cli, token)) == 1


async def test_a_failed_callback_is_sent_again_after_its_backoff(tmp_path: Path) -> None:
    """At least once: a receiver answering 503 gets the event again once the backoff has
    passed (a clock moved by the test), and never before; then no more."""
    answers = [503, 204]
    got: list[bytes] = []

    async def flaky(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(status=answers[len(got) - 1])

    app = web.Application()
    app.router.add_post("/flaky", flaky)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    now = [1_000_000.0]
    policy = CallbackPolicy(secret=SECRET, allow_private=True, backoff_base=60.0)
    try:
        async with open_watch_store(tmp_path / "watches.sqlite3") as store:
            await store.create("k1", [DOC_1], now=now[0], expires_at=now[0] + 86_400,
                               callback_url=f"http://127.0.0.1:{server.port}/flaky", limit=5)
            hook = WatchHook(store, clock=lambda: now[0])
            change = Change(CHANGED, (DOC_1,), DOC_1, "cancelled", "N-1", {})
            assert await hook.record([change]) == 1
            assert await hook.record([change]) == 0  # the same change again: no event
            delivery = WatchDelivery(store, policy, clock=lambda: now[0])
            first = await delivery.deliver_due()
            assert (first.sent, first.failed) == (0, 1)
            now[0] += 59
            assert (await delivery.deliver_due()).failed == 0  # not due yet: nothing sent
            now[0] += 2
            second = await delivery.deliver_due()
            assert (second.sent, second.failed) == (1, 0)
            now[0] += 3600
            assert (await delivery.deliver_due()).sent == 0
            (event,) = await store.events("k1")
            assert await store.delivery(event) == (2, now[0] - 3600, None)
    finally:
        await server.close()
    assert len(got) == 2
    assert got[0] == got[1]  # the same event, byte for byte


async def test_the_sweep_tells_only_changes_made_after_the_watch(
        cli: Client, make_key: KeyMaker) -> None:
    """The sweep (at start, and hourly) records the latest change of each watched invoice
    for the watches made by then: an invoice already cancelled when watched is no event, a
    change whose record was lost is one (by id and by authority code), and sweeping again
    or after the commit's own record adds nothing."""
    await ingest(cli, package([vn_invoice(1), vn_invoice(2)]))
    await ingest(cli, package([], [cancel(1)]))
    token = await make_key("verify")
    await watch(cli, token, [DOC_1, "vn:0100109106:1:C22TAA:2",
                             f"authority_code:{authority_code(2)}"])
    app = cli.server.app
    assert app is not None
    services = app[SERVICES]
    hook = services.watches
    assert hook is not None
    assert await hook.sweep(services.store) == 0  # 1 was cancelled before it was watched
    await ingest(cli, package([], [cancel(2, notice_id="04SS-2026-0002")]))
    assert len(await events(cli, token)) == 2
    # what a process killed between that commit and its record leaves: no event of it
    def lose_them() -> None:  # in a thread: the loop goes on (a delivery round may write)
        with contextlib.closing(sqlite3.connect(services.settings.watches_path)) as conn, conn:
            conn.execute("DELETE FROM watch_events")

    await asyncio.to_thread(lose_them)
    assert await events(cli, token) == []
    assert await hook.sweep(services.store) == 2
    assert await hook.sweep(services.store) == 0
    assert sorted((e["key"], e["status"], e["by"]["notice_id"]) for e in await events(
        cli, token)) == [(f"authority_code:{authority_code(2)}", "cancelled", "04SS-2026-0002"),
                         ("vn:0100109106:1:C22TAA:2", "cancelled", "04SS-2026-0002")]

