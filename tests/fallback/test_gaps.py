"""The gap ledger on its SQLite file: one open gap per lookup key, requesters, callbacks,
filters, visibility, resolution, and durability across reopening."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

from fallback.gaps import (
    GapReason,
    GapRequest,
    GapStatus,
    Visibility,
    open_gap_ledger,
    visible,
)
from tests.fallback.test_breaker import FakeClock

VN_ID = "vn:0100109106:1:C22TAA:7"
VN_KEY = {"seller_tax_id": "0100109106", "template": "1", "series": "C22TAA", "number": 7}


def vn_request(requester: str = "key_a", reason: GapReason = GapReason.PRIMARY_DOWN,
               **over: object) -> GapRequest:
    fields: dict[str, object] = {
        "lookup_key": VN_ID, "scheme": "vn", "key": VN_KEY, "seller_tax_id": "0100109106",
        "reason": reason, "requester": requester}
    fields.update(over)
    return GapRequest(**fields)  # type: ignore[arg-type]


def code_request(requester: str = "key_a") -> GapRequest:
    code = "00" + "AB" * 16
    return GapRequest(f"authority_code:{code}", "vn", {"authority_code": code}, None,
                      GapReason.PRIMARY_DOWN, requester)


async def test_the_same_key_again_is_the_same_gap_counted(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", clock=clock) as ledger:
        first = await ledger.record(vn_request())
        clock.advance(60)
        second = await ledger.record(vn_request(callback_url="https://a.example/cb"))
    assert second.id == first.id
    assert second.count == 2
    assert second.last_seen - second.first_seen == 60
    (requester,) = second.requesters
    assert (requester.key_id, requester.count, requester.callback_url) == (
        "key_a", 2, "https://a.example/cb")
    assert second.status is GapStatus.OPEN
    assert second.key == VN_KEY


async def test_each_requester_is_listed_once_with_its_callback(tmp_path: Path) -> None:
    async with open_gap_ledger(tmp_path / "gaps.sqlite3") as ledger:
        await ledger.record(vn_request("key_a", callback_url="https://a.example/cb"))
        await ledger.record(vn_request("key_b"))
        gap = await ledger.record(vn_request("key_a"))
    assert [(r.key_id, r.count, r.callback_url) for r in gap.requesters] == [
        ("key_a", 2, "https://a.example/cb"), ("key_b", 1, None)]
    shown = gap.as_dict(requesters={"key_b"})
    assert [r["key_id"] for r in shown["requesters"]] == ["key_b"]
    assert shown["requester_count"] == 2


async def test_the_ledger_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path) as ledger:
        gap = await ledger.record(vn_request(issued_on=date(2026, 11, 22), outage_id=3))
    async with open_gap_ledger(path) as reopened:
        again = await reopened.get(gap.id)
        assert again == gap
        counted = await reopened.record(vn_request())
    assert counted.id == gap.id
    assert counted.count == 2
    assert (counted.issued_on, counted.outage_id) == (date(2026, 11, 22), 3)


async def test_a_resolved_gap_stays_and_the_next_miss_opens_a_new_one(tmp_path: Path) -> None:
    async with open_gap_ledger(tmp_path / "gaps.sqlite3") as ledger:
        gap = await ledger.record(vn_request())
        resolved = await ledger.resolve(gap.id, "found")
        assert resolved is not None
        assert (resolved.status, resolved.resolution) == (GapStatus.RESOLVED, "found")
        assert resolved.resolved_at is not None
        fresh = await ledger.record(vn_request())
        assert fresh.id != gap.id
        assert fresh.count == 1
        assert await ledger.resolve("gap_unknown", "found") is None


async def test_list_filters_and_pages_by_id(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", clock=clock) as ledger:
        made = []
        for n in range(5):
            clock.advance(1)
            reason = GapReason.UPSTREAM_OUTAGE if n % 2 else GapReason.PRIMARY_DOWN
            made.append(await ledger.record(vn_request(
                lookup_key=f"vn:0100109106:1:C22TAA:{n}", reason=reason)))
        await ledger.resolve(made[0].id, "missing")
        page = await ledger.list(limit=2)
        assert [g.id for g in page] == [made[0].id, made[1].id]
        rest = await ledger.list(after=page[-1].id, limit=10)
        assert [g.id for g in rest] == [g.id for g in made[2:]]
        opened = await ledger.list(status=GapStatus.OPEN)
        assert made[0].id not in {g.id for g in opened}
        upstream = await ledger.list(reason=GapReason.UPSTREAM_OUTAGE)
        assert [g.id for g in upstream] == [made[1].id, made[3].id]
        since = await ledger.list(since=clock.now - timedelta(seconds=1))
        assert [g.id for g in since] == [made[3].id, made[4].id]


async def test_visibility_by_seller_scope_or_own_request(tmp_path: Path) -> None:
    async with open_gap_ledger(tmp_path / "gaps.sqlite3") as ledger:
        by_seller = await ledger.record(vn_request("key_a"))
        unknown_seller = await ledger.record(code_request("key_b"))
        auditor = Visibility("key_c", frozenset({"0100109106"}))
        other_auditor = Visibility("key_d", frozenset({"0102671977"}))
        asker = Visibility("key_b", frozenset())
        assert [g.id for g in await ledger.list(visible_to=auditor)] == [by_seller.id]
        assert await ledger.list(visible_to=other_auditor) == []
        assert [g.id for g in await ledger.list(visible_to=asker)] == [unknown_seller.id]
        assert len(await ledger.list(visible_to=None)) == 2
    assert visible(by_seller, auditor)
    assert not visible(by_seller, other_auditor)
    assert visible(unknown_seller, asker)
    assert not visible(unknown_seller, auditor)
    assert visible(unknown_seller, None)


async def test_concurrent_records_share_commits_and_lose_nothing(tmp_path: Path) -> None:
    """Group commit: many misses at once (an outage) each get a durable gap id."""
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path) as ledger:
        same = await asyncio.gather(*(ledger.record(vn_request(requester=f"key_{n % 3}"))
                                      for n in range(30)))
        many = await asyncio.gather(*(ledger.record(vn_request(
            lookup_key=f"vn:0100109106:1:C22TAA:{n}", key={**VN_KEY, "number": n}))
            for n in range(100, 300)))
    assert len({gap.id for gap in same}) == 1
    assert len({gap.id for gap in many}) == 200
    async with open_gap_ledger(path) as reopened:
        stored = await reopened.get(same[0].id)
        assert stored is not None
        assert stored.count == 30
        assert sorted(r.count for r in stored.requesters) == [10, 10, 10]
        listed = await reopened.list(limit=1000)
        assert len(listed) == 201


async def test_concurrent_asks_of_one_key_share_one_write_and_merge(tmp_path: Path) -> None:
    """Misses at once of one key (everyone retrying in an outage): one transaction for the
    batch, one ledger write per key, every ask counted and every requester merged, the
    latest callback URL a requester left kept."""
    path = tmp_path / "gaps.sqlite3"
    other = "vn:0100109106:1:C22TAA:8"
    async with open_gap_ledger(path) as ledger:
        before = await ledger.record_id(vn_request())
        asks = [vn_request(requester=f"key_{n % 2}",
                           callback_url="https://a.example/cb" if n == 7 else None,
                           issued_on=date(2026, 11, 22) if n == 9 else None)
                for n in range(40)]
        asks += [vn_request(lookup_key=other, key={**VN_KEY, "number": 8})] * 10
        ids = await asyncio.gather(*(ledger.record_id(ask) for ask in asks))
        assert (ledger.batches, ledger.asks, ledger.keys) == (2, 51, 3)
    assert set(ids[:40]) == {before}
    assert len(set(ids[40:])) == 1
    assert ids[40] != before
    async with open_gap_ledger(path) as reopened:
        gap = await reopened.get(before)
        assert gap is not None
        assert (gap.count, gap.issued_on) == (41, date(2026, 11, 22))
        assert [(r.key_id, r.count, r.callback_url) for r in gap.requesters] == [
            ("key_a", 1, None), ("key_0", 20, None), ("key_1", 20, "https://a.example/cb")]
        second = await reopened.get(ids[40])
        assert second is not None
        assert (second.count, [(r.key_id, r.count) for r in second.requesters]) == (
            10, [("key_a", 10)])
