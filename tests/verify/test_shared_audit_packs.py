"""The audit trail shipped in packs (verify/access/shared_audit.py): many entries to one
document, each entry in the deployment's trail once however often its pack is sent, the
trail's filters and order the same as the local trail's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fallback.shared_file import open_shared_file
from indexer.store.es_state import open_shared_state
from tests.conftest import EsTarget
from tests.verify.test_shared_state import prefix, settings_of  # noqa: F401 (fixture)
from verify.access import shared_audit
from verify.access.audit import AuditTrail
from verify.access.db import open_access_db
from verify.access.roles import Principal, Role
from verify.access.shared_audit import PACK, AuditShipper
from verify.shared_state import shared_file_path


async def test_entries_travel_in_packs_each_once_whatever_is_sent_again(
    tmp_path: Path, es_target: EsTarget, prefix: str  # noqa: F811
) -> None:
    settings = settings_of(tmp_path, "one", es_target, prefix)
    scanner = Principal("k1", Role.VERIFY, frozenset(), "scanner")
    admin = Principal("k2", Role.ADMIN, frozenset(), "ops")
    total = PACK + 7  # a full pack and one still filling
    async with (
        open_access_db(settings.access_path) as conn,
        open_shared_file(shared_file_path(settings.data_dir)) as file,
        open_shared_state(
            es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
        ) as store,
    ):
        trail = AuditTrail(conn, retention=timedelta(days=730))
        shipper = AuditShipper(conn, file, store)
        for number in range(total - 2):
            trail.record(scanner, "verify", f"invoice {number}", "valid", "10.0.0.1")
        await trail.flush()
        assert await shipper.ship() == total - 2
        trail.record(admin, "keys.create", "k3", "created", "10.0.0.2")
        trail.record(scanner, "verify", "invoice 0", "valid", "10.0.0.1")  # asked again
        await trail.flush()
        assert await shipper.ship() == 2, "the pack still filling is sent again, grown"
        await file.set_value("audit.sent", "0")  # a crash before the marks were written
        assert await shipper.ship() == total, "all of it sent again"
        await store.refresh(store.layout.audit)
        assert await store.count(store.layout.audit, {"match_all": {}}) == 2, "two packs"

        everything = await shipper.query(limit=10 * PACK)
        assert len(everything) == total, "each entry once"
        assert [e.target for e in everything[:3]] == ["invoice 0", "k3", f"invoice {total - 3}"]
        asked = await shipper.query(action="verify", target="invoice 0")
        assert len(asked) == 2
        assert {e.key_id for e in asked} == {"k1"}
        assert [e.action for e in await shipper.query(key_id="k2")] == ["keys.create"]
        newest = await shipper.query(key_id="k1", limit=3)
        assert [e.target for e in newest] == ["invoice 0", f"invoice {total - 3}",
                                              f"invoice {total - 4}"]
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert await shipper.query(since=later) == []
        assert len(await shipper.query(until=later, limit=10 * PACK)) == total
        assert await shipper.purge(timedelta(days=1)) == 0
        assert await shipper.purge(timedelta(days=1), now=later + timedelta(days=1)) == 2


async def test_the_newest_entries_across_pages_of_interleaved_packs(
    tmp_path: Path, es_target: EsTarget, prefix: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """Newest first across packs whose spans interleave (two processes), read a page of
    packs at a time: the newest entries come back whichever pack and page hold them."""
    monkeypatch.setattr(shared_audit, "PACK", 2)
    monkeypatch.setattr(shared_audit, "READ_PAGE", 2)
    scanner = Principal("k1", Role.VERIFY, frozenset(), "scanner")
    shippers: list[AuditShipper] = []
    trails: list[AuditTrail] = []
    async with (
        open_access_db(settings_of(tmp_path, "a", es_target, prefix).access_path) as conn_a,
        open_access_db(settings_of(tmp_path, "b", es_target, prefix).access_path) as conn_b,
        open_shared_file(shared_file_path(tmp_path / "a")) as file_a,
        open_shared_file(shared_file_path(tmp_path / "b")) as file_b,
        open_shared_state(
            es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
        ) as store,
    ):
        for conn, file in ((conn_a, file_a), (conn_b, file_b)):
            trails.append(AuditTrail(conn, retention=timedelta(days=730)))
            shippers.append(AuditShipper(conn, file, store))
        order = []
        for number in range(12):  # 3 packs of 2 on each side, 3 pages
            side = number % 2
            trails[side].record(scanner, "verify", f"invoice {number}", "valid", "10.0.0.1")
            await trails[side].flush()
            order.append(f"invoice {number}")
            await shippers[side].ship()
        await store.refresh(store.layout.audit)
        newest = await shippers[0].query(limit=5)
        everything = await shippers[1].query(limit=100)
        assert await store.count(store.layout.audit, {"match_all": {}}) == 6
    assert [e.target for e in newest] == list(reversed(order))[:5]
    assert [e.target for e in everything] == list(reversed(order))
