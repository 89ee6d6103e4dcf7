"""The audit trail's reads by target (a party's check count on every lookup) and by key (the
admin's `GET /admin/audit?key_id=`) go through their indexes, not a walk of the whole trail
by time; and every combination of filters still answers exactly what it asks, newest first.
On a real access file (`open_access_db`), with SQLite's own EXPLAIN QUERY PLAN."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import aiosqlite
import pytest

from verify.access.audit import AuditTrail, _select
from verify.access.db import open_access_db
from verify.access.roles import Principal, Role
from verify.settings import Settings


async def _plan(conn: aiosqlite.Connection, **given: str | float | None) -> str:
    sql, args = _select(**given)
    rows = await conn.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", (*args, 100))
    return " | ".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(("given", "index"), [
    ({"target": "vn:0100109106:1:C22TAA:7", "action": "verify"}, "audit_target"),
    ({"target": "x"}, "audit_target"),
    ({"key_id": "ivk_0123456789ab"}, "audit_key"),
    ({"key_id": "ivk_0123456789ab", "since": 1.0}, "audit_key"),
    ({"since": 1.0, "until": 2.0}, "audit_at"),
])
async def test_a_read_uses_the_index_of_its_filter(settings: Settings, given: dict[str, str],
                                                   index: str) -> None:
    async with open_access_db(settings.access_path) as conn:
        plan = await _plan(conn, **given)
    assert f"USING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # the index gives the order too


async def test_every_combination_of_filters_answers_what_it_asks(settings: Settings) -> None:
    keys = [Principal(f"ivk_key{n}", Role.VERIFY, frozenset(), "test") for n in range(3)]
    targets, actions = ["a", "b", "c"], ["verify", "original.read"]
    async with open_access_db(settings.access_path) as conn:
        trail = AuditTrail(conn, retention=timedelta(days=30))
        for n, (key, target, action) in enumerate(itertools.product(keys, targets, actions)):
            trail.record(key, action, target, f"outcome{n}")
        await trail.flush()
        everything = await trail.query(limit=1000)
        assert len(everything) == 18
        assert [e.at for e in everything] == sorted((e.at for e in everything), reverse=True)
        # the rows' own times are a few microseconds apart (and `at` is rounded to the
        # millisecond): bounds an hour away select all or nothing, exactly
        hour_ago, in_an_hour = (datetime.now(UTC) + timedelta(hours=h) for h in (-1, 1))
        for key_id, action, target, since, until in itertools.product(
                [None, "ivk_key1"], [None, "verify"], [None, "b"], [None, hour_ago, in_an_hour],
                [None, hour_ago, in_an_hour]):
            got = await trail.query(key_id=key_id, action=action, target=target, since=since,
                                    until=until, limit=1000)
            wanted = [e for e in everything
                      if key_id in (None, e.key_id) and action in (None, e.action)
                      and target in (None, e.target) and since is not in_an_hour
                      and until is not hour_ago]
            assert got == wanted, (key_id, action, target, since, until)
        assert await trail.query(until=in_an_hour, limit=5) == everything[:5]
