"""Degraded answers with real faults: Elasticsearch (a private osmem-server) stopped with
SIGSTOP or gone (a closed port), Redis (the real redis-server) as the replica holding what
intake wrote through before the fault. Invariant 2: with the primary down, every invoice
the replica holds is answered, and nothing unchecked is answered `not_found`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import Client, bearer
from tests.factories import authority_code, package, vn_invoice, vn_key
from tests.indexer.store.conftest import fresh_prefix
from tests.indexer.store.plain_json import plain_json_client
from tests.indexer.store.test_elasticsearch import (  # noqa: F401 (fixture)
    closed_port_url,
    private_osmem,
    stop,
)
from tests.metrics_text import samples
from tests.verify.test_distributed import REDIS, namespace  # noqa: F401 (fixture)
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

LOOKUP = "/api/v1/invoices/lookup"


async def make_client(aiohttp_client: Any, tmp_path: Path, es_url: str, ns: str,
                      **env: str) -> Client:
    settings = Settings.from_env({
        "INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_ES_URL": es_url,
        "INVOICE_ES_INDEX_PREFIX": fresh_prefix(), "INVOICE_REDIS_URL": REDIS,
        "INVOICE_REDIS_NAMESPACE": ns, "INVOICE_BREAKER_FAILURES": "2",
        "INVOICE_BREAKER_OPEN_SECONDS": "3600", "INVOICE_PROBE_INTERVAL_SECONDS": "3600",
        **env})
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN)
    app = create_app(settings, es_client_factory=plain_json_client)
    client: Client = await aiohttp_client(app, headers=bearer(token))
    return client


def key_params(number: int) -> dict[str, str]:
    return {k: str(v) for k, v in vn_key(number).items()}


async def get_json(client: Client, path: str, **query: str) -> dict[str, Any]:
    resp = await client.get(path, params=query)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_stalled_primary_answers_from_the_redis_replica(
        aiohttp_client: Any, tmp_path: Path, private_osmem: tuple[str, int],  # noqa: F811
        namespace: str) -> None:  # noqa: F811
    url, pid = private_osmem
    client = await make_client(aiohttp_client, tmp_path, url, namespace)
    resp = await client.post("/api/v1/packages", json=package([vn_invoice(1), vn_invoice(2)]))
    assert (await resp.json())["result"] == "accepted"
    before = await get_json(client, LOOKUP, **key_params(1))
    assert (before["source"], before["degraded"]) == ("primary", False)

    stop(pid)  # the cluster stalls: every request to it times out
    first = await get_json(client, LOOKUP, **key_params(1), total_amount="1100000")
    assert (first["status"], first["source"], first["degraded"]) == ("valid", "replica", True)
    assert first["as_of"]
    miss = await get_json(client, LOOKUP, **key_params(3))
    assert (miss["status"], miss["reason"], miss["source"]) == (
        "unconfirmed", "primary_down", "replica")
    assert miss["gap_id"]
    # The breaker is open now (2 failures): the rest never waits on the stalled cluster.
    again = await get_json(client, LOOKUP, **key_params(3))
    assert again["gap_id"] == miss["gap_id"]
    by_code = await get_json(client, LOOKUP, authority_code=authority_code(2))
    assert (by_code["status"], by_code["source"]) == ("valid", "replica")
    qr = await client.post("/api/v1/verify/qr-text",
                           json={"payload": "vn:0100109106:1:C22TAA:2"})
    assert qr.status == 200
    assert (await qr.json())["result"]["source"] == "replica"
    batch = await client.post("/api/v1/verify/batch", json=[key_params(1), key_params(4)])
    rows = [json.loads(line) for line in (await batch.text()).splitlines()]
    assert [(r["status"], r["source"]) for r in rows] == [
        ("valid", "replica"), ("unconfirmed", "replica")]

    gap = await get_json(client, f"/api/v1/gaps/{miss['gap_id']}")
    assert (gap["count"], gap["reason"], gap["status"]) == (2, "primary_down", "open")
    outages = await get_json(client, "/api/v1/outages", system="primary")
    (window,) = outages["outages"]
    assert (window["kind"], window["end"]) == ("detected", None)
    assert gap["outage_id"] == window["id"]
    values = samples(await (await client.get("/metrics")).text())
    assert values['invoice_breaker_state{state="open",system="primary"}'] == 1
    assert values['invoice_breaker_failures_total{system="primary"}'] == 2


async def test_primary_and_replica_both_down_is_unconfirmed_never_5xx(
        aiohttp_client: Any, tmp_path: Path, namespace: str) -> None:  # noqa: F811
    client = await make_client(aiohttp_client, tmp_path, closed_port_url(), namespace,
                               INVOICE_REDIS_URL="redis://127.0.0.1:1/0")
    for _ in range(3):
        answer = await get_json(client, LOOKUP, **key_params(1))
        assert (answer["status"], answer["reason"]) == ("unconfirmed", "primary_down")
    gaps = await get_json(client, "/api/v1/gaps")
    (gap,) = gaps["gaps"]
    assert gap["count"] == 3


async def test_maintenance_window_never_touches_the_primary(
        aiohttp_client: Any, tmp_path: Path, private_osmem: tuple[str, int],  # noqa: F811
        namespace: str) -> None:  # noqa: F811
    """During a declared window the replica answers at once. The primary is stalled too, so
    any call to it would time out and be counted: the failure counter stays at zero."""
    url, pid = private_osmem
    client = await make_client(aiohttp_client, tmp_path, url, namespace)
    resp = await client.post("/api/v1/packages", json=package([vn_invoice(7)]))
    assert (await resp.json())["result"] == "accepted"
    start = datetime.now(UTC) - timedelta(minutes=1)
    resp = await client.post("/api/v1/outages", json={
        "system": "primary", "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "reason": "add nodes"})
    assert resp.status == 201
    stop(pid)
    answer = await get_json(client, LOOKUP, **key_params(7))
    assert (answer["status"], answer["source"], answer["degraded"]) == (
        "valid", "replica", True)
    miss = await get_json(client, LOOKUP, **key_params(8))
    assert (miss["status"], miss["reason"]) == ("unconfirmed", "primary_down")
    values = samples(await (await client.get("/metrics")).text())
    assert values['invoice_breaker_failures_total{system="primary"}'] == 0
    assert values['invoice_breaker_state{state="closed",system="primary"}'] == 1
