"""Answers reused on `GET /invoices/lookup` (verify/lookup/reuse.py,
docs/lookups.md#answers-reused): what changes an answer is seen at once (or within what the
docs say), what must happen per request still happens for every reused answer, and no
caller gets an answer shaped for another."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fallback.replica import RedisReplica, open_redis_replica
from tests.chaos.polling import poll
from tests.conftest import Client, KeyMaker, bearer
from tests.factories import (
    BUYER,
    CN_CODE_E,
    SELLER,
    cancel,
    cn_invoice,
    package,
    vn_invoice,
    vn_key,
)
from tests.metrics_text import samples
from tests.verify.backend_apps import BACKENDS, backend_settings, serve
from tests.verify.test_distributed import REDIS, namespace  # noqa: F401 (fixture)
from verify.access.roles import Principal, Role
from verify.app import create_app
from verify.lookup.reuse import ANSWER_REUSE, REPLICA_GENERATION_CAP_S, Parsed
from verify.lookup.taxpayers import RECHECK_S
from verify.settings import Settings

URL = "/api/v1/invoices/lookup"
KEY = {k: str(v) for k, v in vn_key(1).items()}
REUSED = 'invoice_lookup_answers_total{how="reused"}'
BUILT = 'invoice_lookup_answers_total{how="built"}'
CN_KEY = {"code": CN_CODE_E, "number": "81532753"}


async def ask(cli: Client, query: dict[str, str], headers: dict[str, str] | None = None,
              status: int = 200) -> dict[str, Any]:
    resp = await cli.get(URL, params=query, headers=headers or {})
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def app_of(cli: Client) -> web.Application:
    assert isinstance(cli.server, TestServer)
    return cli.server.app


async def counts(cli: Client) -> tuple[float, float]:
    """Answers (reused, built) so far."""
    values = samples(await (await cli.get("/metrics")).text())
    return values.get(REUSED, 0.0), values.get(BUILT, 0.0)


async def ingest(cli: Client, invoices: list[dict[str, Any]],
                 notices: list[dict[str, Any]] | None = None) -> None:
    resp = await cli.post("/api/v1/packages",
                          json=package(invoices, notices))
    assert (await resp.json())["result"] == "accepted"


@pytest.fixture(name="each")
async def app_on_each_backend(
    request: pytest.FixtureRequest, aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path, admin_token: str,
) -> AsyncIterator[Client]:
    """The app on SQLite, then on Elasticsearch (osmem-server), with an admin key."""
    settings = backend_settings(request, tmp_path)
    async for client in serve(request, aiohttp_client, settings, admin_token):
        yield client


@pytest.mark.parametrize("each", BACKENDS, indirect=True)
async def test_a_cancellation_ingested_through_the_api_is_answered_at_once(
        each: Client) -> None:
    await ingest(each, [vn_invoice(1)])
    assert (await ask(each, KEY))["status"] == "valid"
    assert (await ask(each, KEY))["status"] == "valid"
    await ingest(each, [], [cancel(1)])
    cancelled = await ask(each, KEY)
    assert cancelled["status"] == "cancelled"
    assert (await ask(each, KEY))["status"] == "cancelled"
    reused, _ = await counts(each)
    on_sqlite = app_of(each)[ANSWER_REUSE].resilience.store.backend == "sqlite"
    # SQLite tells at once that it changed: its answers are reused; Elasticsearch cannot.
    assert reused == (2 if on_sqlite else 0)


async def test_a_primary_answer_carries_the_moment_it_is_sent(cli: Client) -> None:
    await ingest(cli, [vn_invoice(1)])
    first = await ask(cli, KEY)
    await asyncio.sleep(0.002)
    again = await ask(cli, KEY)
    assert (await counts(cli))[0] == 1
    assert again["as_of"] > first["as_of"]
    assert {**again, "as_of": None} == {**first, "as_of": None}


def _registry(status: str) -> dict[str, Any]:
    return {"taxpayers": [{"tax_id": SELLER, "name": "Công ty Cổ phần Thử nghiệm",
                           "status": status}]}


async def test_a_registry_import_by_another_process_is_seen_at_once(
        cli: Client, settings: Settings, tmp_path: Path) -> None:
    await ingest(cli, [vn_invoice(1)])
    resp = await cli.post("/api/v1/admin/registry", json=_registry("00"))
    assert resp.status == 200
    before = await ask(cli, KEY)
    assert before["invoice"]["seller_status"]["today"] == "00"
    assert (await ask(cli, KEY))["invoice"]["seller_status"]["today"] == "00"
    assert (await counts(cli))[0] == 1
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(_registry("06")))
    cli_process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("invoice-verify")), "registry", "import", str(path),
        "--data-dir", str(settings.data_dir))
    assert await cli_process.wait() == 0
    # The registry file's change signal is read at most every RECHECK_S (1 ms).
    await asyncio.sleep(RECHECK_S * 2)
    after = await ask(cli, KEY)
    assert after["invoice"]["seller_status"]["today"] == "06"
    assert after["warnings"][0]["code"] == "seller_not_at_registered_address"


async def test_a_registry_import_through_the_app_is_seen_at_once(cli: Client) -> None:
    await ingest(cli, [vn_invoice(1)])
    await cli.post("/api/v1/admin/registry", json=_registry("00"))
    await ask(cli, KEY)
    assert (await ask(cli, KEY))["invoice"]["seller_status"]["today"] == "00"
    await cli.post("/api/v1/admin/registry", json=_registry("05"))
    assert (await ask(cli, KEY))["invoice"]["seller_status"]["today"] == "05"


async def _declare(cli: Client, system: str, start: datetime, end: datetime) -> None:
    resp = await cli.post("/api/v1/outages", json={
        "system": system, "start": start.isoformat(), "end": end.isoformat(),
        "reason": "tests"})
    assert resp.status == 201, await resp.text()


async def test_a_declared_maintenance_window_switches_to_the_replica_at_once(
        cli: Client) -> None:
    await ingest(cli, [vn_invoice(1)])
    now = datetime.now(UTC)
    await _declare(cli, "primary", now + timedelta(seconds=0.6), now + timedelta(hours=1))
    assert (await ask(cli, KEY))["source"] == "primary"
    assert (await ask(cli, KEY))["source"] == "primary"
    assert (await counts(cli))[0] == 1
    await asyncio.sleep(max(0.0, (now + timedelta(seconds=0.7) - datetime.now(UTC))
                            .total_seconds()))  # the window, declared before, begins
    answer = await ask(cli, KEY)
    assert (answer["status"], answer["source"], answer["degraded"]) == ("valid", "replica", True)


async def test_an_upstream_window_beginning_makes_a_miss_unconfirmed_at_once(
        cli: Client) -> None:
    await ingest(cli, [vn_invoice(1)])
    now = datetime.now(UTC)
    await _declare(cli, "upstream", now + timedelta(seconds=0.6), now + timedelta(hours=1))
    missing = {k: str(v) for k, v in vn_key(2).items()}
    assert (await ask(cli, missing))["status"] == "not_found"
    assert (await ask(cli, missing))["status"] == "not_found"
    assert (await counts(cli))[0] == 1
    await asyncio.sleep(max(0.0, (now + timedelta(seconds=0.7) - datetime.now(UTC))
                            .total_seconds()))
    answer = await ask(cli, missing)
    assert (answer["status"], answer["reason"]) == ("unconfirmed", "upstream_outage")


async def test_a_revoked_key_gets_401(cli: Client, make_key: KeyMaker) -> None:
    await ingest(cli, [vn_invoice(1)])
    resp = await cli.post("/api/v1/admin/keys", json={"role": "verify", "name": "scanner"})
    made = await resp.json()
    headers = bearer(made["token"])
    await ask(cli, KEY, headers)
    await ask(cli, KEY, headers)
    assert (await counts(cli))[0] == 1
    resp = await cli.delete(f"/api/v1/admin/keys/{made['key']['key_id']}")
    assert resp.status in (200, 204), await resp.text()
    await ask(cli, KEY, headers, status=401)


@pytest.mark.parametrize("reuse", ["1", "0"])
async def test_budgets_and_audit_count_every_reused_answer(
        aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path, admin_token: str,
        reuse: str) -> None:
    """The key's share of an invoice's day is 3 lookups: the 4th is refused, reused or not;
    every answered lookup (found or missed) is in the audit trail."""
    from verify.app import create_app

    settings = Settings.from_env({
        "INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_ANSWER_REUSE": reuse,
        "INVOICE_RATE_INVOICE_PER_DAY": "100", "INVOICE_RATE_INVOICE_PER_KEY_PER_DAY": "3"})
    cli = await aiohttp_client(create_app(settings), headers=bearer(admin_token))
    await ingest(cli, [vn_invoice(1)])
    resp = await cli.post("/api/v1/admin/keys", json={"role": "verify"})
    headers = bearer((await resp.json())["token"])
    statuses = [(await cli.get(URL, params=KEY, headers=headers)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    missing = {k: str(v) for k, v in vn_key(2).items()}
    for _ in range(3):
        await ask(cli, missing, headers)
    trail = await (await cli.get("/api/v1/admin/audit",
                                 params={"action": "verify", "limit": "100"})).json()
    assert len(trail["entries"]) == 3 + 3
    assert (await counts(cli))[0] == (2 + 2 if reuse == "1" else 0)


async def test_a_buyer_scoped_key_and_a_verify_key_each_get_their_own_shape(
        cli: Client, make_key: KeyMaker) -> None:
    await ingest(cli, [vn_invoice(1)])
    buyer = bearer(await make_key("verify", [BUYER]))
    stranger = bearer(await make_key("verify"))
    for _ in range(2):
        for party in ({}, buyer):  # an admin; the buyer (its answers count checks: built)
            seen = await ask(cli, KEY, party)
            assert (seen["invoice"]["buyer_tax_id"], "redacted" in seen["invoice"]) == (
                BUYER, False)
        hidden = await ask(cli, KEY, stranger)
        assert (hidden["invoice"]["buyer_tax_id"], hidden["invoice"]["redacted"]) == (
            None, ["buyer_tax_id", "buyer_name"])
    assert (await counts(cli))[0] == 2


async def test_the_chinese_second_factor_is_not_leaked(cli: Client, make_key: KeyMaker) -> None:
    await ingest(cli, [cn_invoice()])
    query = CN_KEY
    stranger = bearer(await make_key("verify"))
    for _ in range(2):
        whole = await ask(cli, query)  # an admin sees the whole invoice
        assert whole["invoice"]["total_amount"] is not None
        guarded = await ask(cli, query, stranger)
        assert guarded["invoice"].get("total_amount") is None
    assert (await counts(cli))[0] == 2


@pytest.mark.parametrize("extra", [{"receipt": "true"}, {"watch": "true"},
                                   {"callback_url": "http://127.0.0.1:9/hook"}])
async def test_receipts_watches_and_callbacks_are_never_reused(
        cli: Client, extra: dict[str, str]) -> None:
    await ingest(cli, [vn_invoice(1)])
    for _ in range(3):
        await ask(cli, {**KEY, **extra})
    assert await counts(cli) == (0, 3)


async def test_a_new_day_builds_the_answer_again(cli: Client) -> None:
    """Seller status, the verification window and the intake lag read the scheme's day."""
    await ingest(cli, [vn_invoice(1)])
    reuse = app_of(cli)[ANSWER_REUSE]
    moment = [1000.0]
    reuse.clock = lambda: moment[0]
    # 23:59:59.5 in Vietnam (UTC+7): its next day begins half a second on.
    reuse.wall = lambda: datetime(2026, 3, 1, 16, 59, 59, 500_000, UTC).timestamp()
    await ask(cli, KEY)
    moment[0] += 0.4
    await ask(cli, KEY)
    assert await counts(cli) == (1, 1)
    moment[0] += 0.2
    await ask(cli, KEY)
    assert await counts(cli) == (1, 2)


async def test_a_replica_answer_is_reused_until_the_replica_changes(cli: Client) -> None:
    """The in-memory replica counts its writes (`Replica.seen_generation`): its answers hold
    past `INVOICE_ANSWER_REUSE_REPLICA_MS` while it is unchanged, a write builds them again,
    and `REPLICA_GENERATION_CAP_S` bounds them whatever happens."""
    await ingest(cli, [cn_invoice()])  # no seller status: no registry record to follow
    now = datetime.now(UTC)
    await _declare(cli, "primary", now - timedelta(minutes=1), now + timedelta(hours=1))
    reuse = app_of(cli)[ANSWER_REUSE]
    replica = reuse.resilience.replica
    moment = [1000.0]
    reuse.clock = lambda: moment[0]
    assert (await ask(cli, CN_KEY))["source"] == "replica"
    moment[0] += reuse.replica_seconds * 5
    await ask(cli, CN_KEY)
    assert await counts(cli) == (1, 1)
    await replica.put_many([])  # a write (of nothing): the generation moves on
    assert (await ask(cli, CN_KEY))["source"] == "replica"
    assert await counts(cli) == (1, 2)
    await ask(cli, CN_KEY)
    assert await counts(cli) == (2, 2)
    moment[0] += REPLICA_GENERATION_CAP_S
    assert (await ask(cli, CN_KEY))["source"] == "replica"
    assert await counts(cli) == (2, 3)


async def test_a_redis_replica_answer_holds_while_no_process_writes_the_replica(
        aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path, admin_token: str,
        settings: Settings, namespace: str) -> None:  # noqa: F811 (the fixture)
    """On Redis every write of any process changes `inv:v1:generation`; each process reads
    it with its coalesced reads. Answers asked again and again for longer than
    `INVOICE_ANSWER_REUSE_REPLICA_MS` are built once while nobody writes; another process's
    write (here a replica of the test's own on the same namespace) is seen, the invoice it
    removed answered `unconfirmed`."""
    app = create_app(Settings.from_env({
        "INVOICE_DATA_DIR": str(settings.data_dir), "INVOICE_REDIS_URL": REDIS,
        "INVOICE_REDIS_NAMESPACE": namespace, "INVOICE_ANSWER_REUSE_REPLICA_MS": "300",
        "INVOICE_RATE_INVOICE_PER_DAY": "1000000"}))
    cli = await aiohttp_client(app, headers=bearer(admin_token))
    invoice = cn_invoice()
    await ingest(cli, [invoice])  # written through to Redis
    now = datetime.now(UTC)
    await _declare(cli, "primary", now - timedelta(minutes=1), now + timedelta(hours=1))
    answer = await ask(cli, CN_KEY)
    assert answer["source"] == "replica"
    ends = asyncio.get_running_loop().time() + 1.0  # more than three times the setting
    while asyncio.get_running_loop().time() < ends:
        assert (await ask(cli, CN_KEY))["status"] == "valid"
    reused, built = await counts(cli)
    assert built <= 2 < reused  # one build; two if the machine stalled past 0.3 s once
    async with open_redis_replica(REDIS, namespace=namespace) as other:
        await other.delete_many([answer["invoice"]["id"]])
    written = time.monotonic()
    replica = app[ANSWER_REUSE].resilience.replica
    assert isinstance(replica, RedisReplica)

    async def read_since() -> bool:  # each ask starts a read of the generation when due
        await ask(cli, CN_KEY)
        return replica._generation[1] >= written

    await poll(read_since, 30.0, "a read of the replica's generation sent after the write")
    # once a read sent after the write is back, no answer read before it is sent again
    assert (await ask(cli, CN_KEY))["status"] == "unconfirmed"


async def test_an_unconfirmed_miss_asked_again_is_built_again_from_its_parse(
        cli: Client) -> None:
    """No unconfirmed answer is kept, but its query string's parse is: the same string
    asked again is built again without being parsed (`Parsed`), and everything a built
    miss does per request still happens (its ask counted in the gap, its audit row, the
    count of built answers); another query string is parsed as ever."""
    now = datetime.now(UTC)
    await _declare(cli, "primary", now - timedelta(minutes=1), now + timedelta(hours=1))
    missing = {k: str(v) for k, v in vn_key(2).items()}
    answers = [await ask(cli, missing) for _ in range(3)]
    assert [a["status"] for a in answers] == ["unconfirmed"] * 3
    assert len({a["gap_id"] for a in answers}) == 1
    assert await counts(cli) == (0, 3)
    reuse = app_of(cli)[ANSWER_REUSE]
    anyone = Principal("anyone", Role.VERIFY, frozenset())
    parsed = reuse.find(anyone, urlencode(missing))
    gap = await (await cli.get(f"/api/v1/gaps/{answers[0]['gap_id']}")).json()
    assert isinstance(parsed, Parsed)
    assert parsed.query.lookup_key == gap["lookup_key"]
    trail = await (await cli.get("/api/v1/admin/audit",
                                 params={"action": "verify", "limit": "100"})).json()
    assert (gap["count"], len(trail["entries"])) == (3, 3)
    assert reuse.find(anyone, urlencode({**missing, "number": "3"})) is None
