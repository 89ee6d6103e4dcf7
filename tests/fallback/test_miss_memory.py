"""Repeated misses of one key through the real embedded app in a maintenance window (the
primary down, the replica without the invoice): the answer is built once for the moment
(each copy with its own `as_of`), the replica is not read again for the moment, the gap id
comes from the ledger's memory once the requester's row is on disk, and every ask is
counted once the ledger has flushed (docs/outages.md#misses-under-load)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from fallback.gaps import SqliteGapLedger
from fallback.lookup.moment import MomentMemo
from tests.conftest import Client
from tests.verify.test_outages import LOOKUP, declare, now, params
from verify.app import create_app
from verify.keys import GAPS, RESILIENCE
from verify.settings import Settings

UNKNOWN = 990_321
ASKS = 6


class Ticks:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_moment_memo_forgets_everything_after_the_moment() -> None:
    ticks = Ticks()
    memo: MomentMemo[str, int] = MomentMemo(1.0, ticks)
    memo.put("a", 1)
    ticks.now += 0.6
    memo.put("b", 2)
    assert (memo.get("a"), memo.get("b")) == (1, 2)
    ticks.now += 0.4  # the moment began at "a"
    assert (memo.get("a"), memo.get("b")) == (None, None)
    memo.put("c", 3)
    assert memo.get("c") == 3
    off: MomentMemo[str, int] = MomentMemo(0.0, ticks)
    off.put("a", 1)
    assert off.get("a") is None


async def test_repeated_misses_reuse_the_answer_skip_the_replica_and_count_every_ask(
        cli: Client) -> None:
    await declare(cli, "primary", now() - timedelta(minutes=1), now() + timedelta(hours=1))
    resilience = cli.app[RESILIENCE]
    ledger = cli.app[GAPS]
    assert isinstance(ledger, SqliteGapLedger)
    answers = []
    for _ in range(ASKS):  # one after the other: each after the last one's answer
        resp = await cli.get(LOOKUP, params=params(UNKNOWN))
        assert resp.status == 200, await resp.text()
        answers.append(await resp.json())
    assert {(a["status"], a["reason"], a["source"]) for a in answers} == {
        ("unconfirmed", "primary_down", "replica")}
    assert len({a["gap_id"] for a in answers}) == 1
    assert all(a["as_of"] for a in answers)
    # built once, read from the replica once, the ledger's commit awaited once: within the
    # moment (1 s) all the others are answered from memory
    assert resilience.shared_answers >= 1
    assert resilience.replica_reads_spared >= 1
    assert ledger.early >= 1
    await ledger.drain()
    gap = await (await cli.get(f"/api/v1/gaps/{answers[0]['gap_id']}")).json()
    assert gap["count"] == ASKS
    assert [r["count"] for r in gap["requesters"]] == [ASKS]



@pytest.fixture
async def cli_without_memory(aiohttp_client: Callable[..., Awaitable[Client]],
                             settings: Settings, admin_token: str) -> Client:
    """The real app with `INVOICE_MISS_MEMORY_MS=0`."""
    off = Settings.from_env({"INVOICE_DATA_DIR": str(settings.data_dir),
                             "INVOICE_MISS_MEMORY_MS": "0"})
    return await aiohttp_client(create_app(off),
                                headers={"Authorization": f"Bearer {admin_token}"})


async def test_no_memory_when_the_setting_says_0(cli_without_memory: Client) -> None:
    cli = cli_without_memory
    """The setting reaches the ledger and the lookup path: every repeated miss is built,
    read from the replica and waits for its own commit."""
    await declare(cli, "primary", now() - timedelta(minutes=1), now() + timedelta(hours=1))
    resilience, ledger = cli.app[RESILIENCE], cli.app[GAPS]
    assert isinstance(ledger, SqliteGapLedger)
    for _ in range(ASKS):
        resp = await cli.get(LOOKUP, params=params(UNKNOWN))
        assert (await resp.json())["status"] == "unconfirmed"
    assert (resilience.shared_answers, resilience.replica_reads_spared, ledger.early) == (0, 0, 0)
    gap = await (await cli.get(f"/api/v1/gaps/{(await resp.json())['gap_id']}")).json()
    assert gap["count"] == ASKS


@pytest.mark.parametrize(("quiet_s", "from_memory"), [("600", 1), ("0", 0)])
async def test_a_quiet_ledger_answers_past_the_moment_as_the_setting_says(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
        admin_token: str, quiet_s: str, from_memory: int) -> None:
    """`INVOICE_MISS_MEMORY_QUIET_S` reaches the ledger: a key asked again after the moment,
    while other misses keep the ledger writing and nobody else writes its file, is answered
    from memory (the default), or waits for its commit (0)."""
    app = create_app(Settings.from_env({
        "INVOICE_DATA_DIR": str(settings.data_dir), "INVOICE_MISS_MEMORY_MS": "300",
        "INVOICE_MISS_MEMORY_QUIET_S": quiet_s}))
    cli = await aiohttp_client(app, headers={"Authorization": f"Bearer {admin_token}"})
    await declare(cli, "primary", now() - timedelta(minutes=1), now() + timedelta(hours=1))
    ledger = cli.app[GAPS]
    assert isinstance(ledger, SqliteGapLedger)
    first = await (await cli.get(LOOKUP, params=params(UNKNOWN))).json()
    await asyncio.sleep(0.5)  # past the moment
    other = await (await cli.get(LOOKUP, params=params(UNKNOWN + 1))).json()  # a batch
    again = await (await cli.get(LOOKUP, params=params(UNKNOWN))).json()
    assert {first["status"], other["status"], again["status"]} == {"unconfirmed"}
    assert again["gap_id"] == first["gap_id"]
    assert ledger.early == from_memory
    await ledger.drain()
    gap = await (await cli.get(f"/api/v1/gaps/{first['gap_id']}")).json()
    assert gap["count"] == 2
