"""Misses of one key at once, through the real embedded app in a maintenance window (the
primary down, the replica without the invoice): each is answered `unconfirmed` with the
one gap's id, the answer is built once and shared while its gap is written, and every ask
is counted in the ledger with its requester (docs/outages.md#gap-ledger)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.conftest import Client, KeyMaker, bearer
from tests.verify.test_outages import LOOKUP, declare, now, params
from verify.keys import RESILIENCE

UNKNOWN = 990_123


async def test_concurrent_misses_of_one_key_share_the_answer_and_count_every_ask(
        cli: Client, make_key: KeyMaker) -> None:
    await declare(cli, "primary", now() - timedelta(minutes=1), now() + timedelta(hours=1))
    others = [await make_key("verify", name=f"retrying {n}") for n in range(2)]
    callers = [None, *others] * 10  # the admin key and two others, ten times each

    async def ask(token: str | None) -> dict[str, object]:
        resp = await cli.get(LOOKUP, params=params(UNKNOWN),
                             headers=bearer(token) if token else None)
        assert resp.status == 200, await resp.text()
        body: dict[str, object] = await resp.json()
        return body

    answers = await asyncio.gather(*(ask(token) for token in callers))
    assert {(a["status"], a["reason"], a["source"]) for a in answers} == {
        ("unconfirmed", "primary_down", "replica")}
    gap_ids = {a["gap_id"] for a in answers}
    assert len(gap_ids) == 1
    assert cli.app[RESILIENCE].shared_answers > 0  # built once, copied by the others

    (gap_id,) = gap_ids
    gap = await (await cli.get(f"/api/v1/gaps/{gap_id}")).json()
    assert gap["count"] == len(callers)
    assert sorted(r["count"] for r in gap["requesters"]) == [10, 10, 10]
