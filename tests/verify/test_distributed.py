"""The distributed deployment through the real app: Elasticsearch (osmem-server in CI, or
INVOICE_ES_URL) as the primary index and a real redis-server as the replica and the
rate-limit store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from fallback.outages import System
from fallback.replica import open_redis_replica
from tests.conftest import Client, EsTarget, bearer
from tests.factories import cancel, package, vn_invoice, vn_key
from tests.indexer.store.conftest import fresh_prefix
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.keys import OUTAGES
from verify.settings import Settings

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    name = f"test:{uuid.uuid4().hex[:12]}"
    yield name
    client = Redis.from_url(REDIS)
    try:
        keys = [k async for k in client.scan_iter(match=f"{name}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def distributed(aiohttp_client: Any, tmp_path: Path, es_target: EsTarget,
                      namespace: str) -> Client:
    settings = Settings.from_env({
        "INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_ES_URL": es_target.url,
        "INVOICE_ES_INDEX_PREFIX": fresh_prefix(), "INVOICE_REDIS_URL": REDIS,
        "INVOICE_REDIS_NAMESPACE": namespace, "INVOICE_RATE_KEY_BURST": "5",
        "INVOICE_RATE_KEY_PER_MINUTE": "1"})
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN)
    app = create_app(settings, es_client_factory=es_target.client_factory)
    client: Client = await aiohttp_client(app, headers=bearer(token))
    return client


async def test_ready_reports_both_dependencies(distributed: Client) -> None:
    body = await (await distributed.get("/readyz")).json()
    assert body == {"status": "ready", "checks": {
        "primary": {"backend": "elasticsearch", "ok": True, "state": "ok"},
        "replica": {"backend": "redis", "ok": True, "state": "ok"}},
        "journal": {"ok": True, "pending": 0, "quarantined": 0}}


async def test_intake_writes_through_to_the_redis_replica(distributed: Client,
                                                          namespace: str) -> None:
    resp = await distributed.post("/api/v1/packages",
                                  json=package([vn_invoice(1), vn_invoice(2)], [cancel(2)]))
    assert (await resp.json())["result"] == "accepted"
    answer = await (await distributed.get("/api/v1/invoices/lookup",
                                          params={k: str(v) for k, v in vn_key(2).items()})
                    ).json()
    assert (answer["status"], answer["source"]) == ("cancelled", "primary")
    async with open_redis_replica(REDIS, namespace=namespace) as replica:
        one = await replica.get("vn:0100109106:1:C22TAA:1")
        two = await replica.get("vn:0100109106:1:C22TAA:2")
    assert one is not None
    assert one["total_amount"] == 11_000_000_000  # scaled integer, 4 decimals
    assert two is not None
    assert two["lifecycle"] == "cancelled", "a status change is written through too"


async def test_rate_limits_live_in_redis(distributed: Client, namespace: str) -> None:
    statuses = [(await distributed.get("/api/v1/invoices/lookup",
                                       params={k: str(v) for k, v in vn_key(1).items()})).status
                for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    client = Redis.from_url(REDIS)
    try:
        buckets = [k async for k in client.scan_iter(match=f"{namespace}:rl:*")]
    finally:
        await client.aclose()
    assert any(b"key:" in k for k in buckets)
    assert any(b"inv:vn:0100109106:1:C22TAA:1" in k for k in buckets)


async def test_a_refused_lookup_on_the_replica_path_records_nothing(
        aiohttp_client: Any, tmp_path: Path, es_target: EsTarget, namespace: str) -> None:
    """With Redis rate limits the replica read runs while the budget take is on its way
    (`verify.lookup.verification`); the budget's verdict still decides: the lookup refused by the
    invoice's budget gets 429 and adds nothing to the gap the admitted ones recorded."""
    settings = Settings.from_env({
        "INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_ES_URL": es_target.url,
        "INVOICE_ES_INDEX_PREFIX": fresh_prefix(), "INVOICE_REDIS_URL": REDIS,
        "INVOICE_REDIS_NAMESPACE": namespace, "INVOICE_RATE_INVOICE_PER_DAY": "2"})
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN)
    app = create_app(settings, es_client_factory=es_target.client_factory)
    client: Client = await aiohttp_client(app, headers=bearer(token))
    start = datetime.now(UTC) - timedelta(minutes=1)
    await app[OUTAGES].declare(System.PRIMARY, start, start + timedelta(hours=1), "tests",
                               "tests")
    params = {k: str(v) for k, v in vn_key(404).items()}
    answers = []
    for _ in range(3):
        resp = await client.get("/api/v1/invoices/lookup", params=params)
        answers.append((resp.status, (await resp.json()).get("status")))
    assert answers == [(200, "unconfirmed"), (200, "unconfirmed"), (429, None)]
    gaps = (await (await client.get("/api/v1/gaps")).json())["gaps"]
    assert [gap["count"] for gap in gaps] == [2]
