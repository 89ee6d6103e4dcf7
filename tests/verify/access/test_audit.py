"""The audit trail: verifications, intake and key changes, queryable by admins only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import package, vn_invoice, vn_key
from verify.access.audit import AuditTrail
from verify.access.db import open_access_db
from verify.settings import Settings


async def entries(cli: Client, **query: str) -> list[dict[str, Any]]:
    resp = await cli.get("/api/v1/admin/audit", params=query)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return list(body["entries"])


async def test_who_verified_what_with_which_answer(cli: Client, make_key: KeyMaker) -> None:
    await cli.post("/api/v1/packages", json=package([vn_invoice(1)], package_id="PKG-AUD"))
    token = await make_key("verify", name="shop 12")
    key_id = token.split("_")[1]
    for number in (1, 2):
        await cli.get("/api/v1/invoices/lookup", params=vn_key(number), headers=bearer(token))
    mine = await entries(cli, key_id=key_id)
    assert [(e["action"], e["target"], e["outcome"]) for e in mine] == [
        ("verify", "vn:0100109106:1:C22TAA:2", "not_found"),
        ("verify", "vn:0100109106:1:C22TAA:1", "valid"),
    ]
    assert all(e["role"] == "verify" and e["client"] for e in mine)
    intake = await entries(cli, action="intake")
    assert [(e["target"], e["outcome"]) for e in intake] == [("PKG-AUD", "accepted")]
    created = await entries(cli, action="keys.create", target=key_id)
    assert [e["outcome"] for e in created] == ["verify"]


async def test_time_filters_and_limit(cli: Client) -> None:
    for number in range(1, 4):
        await cli.get("/api/v1/invoices/lookup", params=vn_key(number))
    assert len(await entries(cli, action="verify", limit="2")) == 2
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await entries(cli, since=future) == []
    assert len(await entries(cli, action="verify", until=future)) == 3


async def test_bad_audit_queries(cli: Client, make_key: KeyMaker) -> None:
    for query in ({"limit": "0"}, {"limit": "x"}, {"since": "yesterday"},
                  {"since": "2026-01-01T00:00:00"}, {"who": "me"}):
        resp = await cli.get("/api/v1/admin/audit", params=query)
        assert resp.status == 400, query
    auditor = await make_key("audit", ["0100109106"])
    assert (await cli.get("/api/v1/admin/audit", headers=bearer(auditor))).status == 403


async def test_retention_purges_old_entries(settings: Settings) -> None:
    async with open_access_db(settings.access_path) as conn:
        trail = AuditTrail(conn, retention=timedelta(days=30))
        trail.record(None, "verify", "x", "valid")
        await trail.flush()
        assert await trail.purge(datetime.now(UTC) + timedelta(days=29)) == 0
        assert await trail.purge(datetime.now(UTC) + timedelta(days=31)) == 1
        assert await trail.query() == []
