"""The replica, over both implementations: the in-process LRU and a real redis-server.

Redis tests use the shared server on 127.0.0.1:6379 with a namespace of their own, deleting
their keys afterwards. Faults are real: a port nothing listens on, and a private
redis-server stopped with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis.asyncio as redis

from fallback.replica import (
    GENERATION_REFRESH_S,
    MemoryReplica,
    RedisReplica,
    Replica,
    ReplicaUnavailable,
    open_redis_replica,
)
from fallback.replica_docs import DecodedInvoices, replica_doc
from indexer.codec import invoice_from_doc, invoice_to_doc
from indexer.keys import CnKey
from indexer.model import Lifecycle, Relation, RelationKind
from tests.factories import authority_code
from tests.indexer.store.test_contract import NOW, cn, vn

REDIS_URL = "redis://127.0.0.1:6379/0"
#: Bounds a call that must fail fast; hitting it fails the test (TimeoutError, not
#: ReplicaUnavailable) instead of hanging the suite. It is not a timing assertion.
HANG_GUARD_S = 10
TTL_S = 3600


async def _delete_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def replica(request: pytest.FixtureRequest) -> AsyncIterator[Replica]:
    if request.param == "memory":
        yield MemoryReplica(max_docs=1000)
        return
    namespace = f"test-{uuid.uuid4().hex[:12]}:v1"
    async with open_redis_replica(REDIS_URL, namespace=namespace, ttl=TTL_S) as redis_replica:
        try:
            yield redis_replica
        finally:
            await _delete_namespace(namespace)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def private_redis() -> Iterator[tuple[str, int]]:
    """A redis-server of this test's own (no persistence), so stopping it disturbs nothing."""
    port = _closed_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--loglevel", "notice"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # returns once the server says it is ready, or exits
            if "Ready to accept connections" in line:
                break
        else:
            raise AssertionError("redis-server exited before it was ready")
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # in case the test stopped it
        proc.terminate()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _stop(pid: int) -> None:
    """SIGSTOP a child and return once the kernel reports it stopped."""
    os.kill(pid, signal.SIGSTOP)
    os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOWAIT)


async def test_a_put_document_answers_a_full_verification(replica: Replica) -> None:
    await replica.ping()
    invoices = [vn(1), vn(2, buyer_name="Người mua"), cn("013002200211", "81532753"),
                cn(None, "23442000000014209621")]
    await replica.put_many([invoice_to_doc(inv) for inv in invoices])
    for inv in invoices:
        doc = await replica.get(inv.doc_id)
        assert doc == invoice_to_doc(inv)
        assert invoice_from_doc(doc) == inv


async def test_missing_documents_are_none(replica: Replica) -> None:
    assert await replica.get("vn:0100109106:1:C22TAA:1") is None
    assert await replica.get_by_authority_code(authority_code(1)) is None
    await replica.put_many([])


async def test_lookup_by_authority_code(replica: Replica) -> None:
    await replica.put_many([invoice_to_doc(vn(1)), invoice_to_doc(vn(2))])
    doc = await replica.get_by_authority_code(authority_code(2))
    assert doc is not None
    assert doc["doc_id"] == vn(2).doc_id
    assert await replica.get_by_authority_code(authority_code(3)) is None


async def test_a_put_replaces_the_state(replica: Replica) -> None:
    original = vn(1)
    cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED, relations=(
        Relation(RelationKind.CANCELLED_BY, notice_id="04SS-1", reason="sai người mua", at=NOW),))
    await replica.put_many([invoice_to_doc(original)])
    await replica.put_many([invoice_to_doc(cancelled)])
    doc = await replica.get(original.doc_id)
    assert doc is not None
    assert invoice_from_doc(doc) == cancelled
    by_code = await replica.get_by_authority_code(authority_code(1))
    assert by_code is not None
    assert invoice_from_doc(by_code) == cancelled


async def test_delete_many_removes_documents_and_their_codes(replica: Replica) -> None:
    await replica.put_many([invoice_to_doc(vn(1)), invoice_to_doc(vn(2))])
    await replica.delete_many([vn(1).doc_id, "vn:0100109106:1:C22TAA:999"])
    assert await replica.get(vn(1).doc_id) is None
    assert await replica.get_by_authority_code(authority_code(1)) is None
    kept = await replica.get_by_authority_code(authority_code(2))
    assert kept is not None
    assert kept["doc_id"] == vn(2).doc_id


async def test_concurrent_lookups_each_get_their_own_answer(replica: Replica) -> None:
    """On Redis these go out together (one coalesced MGET per batch)."""
    invoices = [vn(n) for n in range(1, 21)]
    await replica.put_many([invoice_to_doc(inv) for inv in invoices])
    asks = [replica.get(inv.doc_id) for inv in invoices]
    asks += [replica.get_by_authority_code(authority_code(n)) for n in range(1, 21)]
    asks += [replica.get(f"vn:0100109106:1:C22TAA:{n}") for n in range(900, 905)]
    asks += [replica.get_by_authority_code(authority_code(n)) for n in range(900, 905)]
    answers = await asyncio.gather(*asks)
    expected = [invoice_to_doc(inv) for inv in invoices] * 2 + [None] * 10
    assert answers == expected


async def test_redis_code_entries_of_the_earlier_shape_are_still_followed() -> None:
    """Entries written before a code entry held the document held its doc id."""
    namespace = f"test-{uuid.uuid4().hex[:12]}:v1"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        async with open_redis_replica(REDIS_URL, namespace=namespace, ttl=TTL_S) as replica:
            await replica.put_many([invoice_to_doc(vn(1)), invoice_to_doc(vn(2))])
            for n in (1, 2):
                await client.set(f"{namespace}:code:{authority_code(n)}",
                                 orjson.dumps(vn(n).doc_id), ex=TTL_S)
            assert await replica.get_by_authority_code(authority_code(1)) == invoice_to_doc(vn(1))
            await replica.delete_many([vn(2).doc_id])
            assert await client.get(f"{namespace}:code:{authority_code(2)}") is None
    finally:
        await _delete_namespace(namespace)
        await client.aclose()


async def test_memory_replica_evicts_least_recently_used() -> None:
    replica = MemoryReplica(max_docs=2)
    await replica.put_many([invoice_to_doc(vn(1)), invoice_to_doc(vn(2))])
    assert await replica.get(vn(1).doc_id) is not None  # 1 is now the most recent
    await replica.put_many([invoice_to_doc(vn(3))])
    assert len(replica) == 2
    assert await replica.get(vn(2).doc_id) is None
    assert await replica.get_by_authority_code(authority_code(2)) is None
    assert await replica.get(vn(1).doc_id) is not None
    assert await replica.get_by_authority_code(authority_code(3)) is not None


async def test_memory_replica_hands_out_copies() -> None:
    replica = MemoryReplica()
    await replica.put_many([invoice_to_doc(vn(1))])
    doc = await replica.get(vn(1).doc_id)
    assert doc is not None
    doc["lifecycle"] = "cancelled"
    again = await replica.get(vn(1).doc_id)
    assert again is not None
    assert again["lifecycle"] == "issued"


async def test_redis_keys_are_namespaced_json_with_a_ttl() -> None:
    namespace = f"test-{uuid.uuid4().hex[:12]}:v1"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        async with open_redis_replica(REDIS_URL, namespace=namespace, ttl=TTL_S) as replica:
            await replica.put_many([invoice_to_doc(vn(1)), invoice_to_doc(cn(None, "1" * 20))])
        keys = sorted([k.decode() async for k in client.scan_iter(match=f"{namespace}:*")])
        assert keys == [f"{namespace}:code:{authority_code(1)}",
                        f"{namespace}:doc:{CnKey(None, '1' * 20).doc_id}",
                        f"{namespace}:doc:{vn(1).doc_id}",
                        f"{namespace}:generation"]  # set anew by every write
        raw = await client.get(f"{namespace}:doc:{vn(1).doc_id}")
        assert orjson.loads(raw) == invoice_to_doc(vn(1))
        # The code entry holds the document too: a lookup by code is one read.
        by_code = await client.get(f"{namespace}:code:{authority_code(1)}")
        assert orjson.loads(by_code) == invoice_to_doc(vn(1))
        for key in keys:
            assert 0 < await client.ttl(key) <= TTL_S
    finally:
        await _delete_namespace(namespace)
        await client.aclose()


async def test_unreachable_redis_raises_replica_unavailable() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    async with open_redis_replica(url, namespace="never:v1") as replica:
        async with asyncio.timeout(HANG_GUARD_S):
            with pytest.raises(ReplicaUnavailable):
                await replica.ping()
            with pytest.raises(ReplicaUnavailable):
                await replica.get(vn(1).doc_id)
            with pytest.raises(ReplicaUnavailable):
                await replica.get_by_authority_code(authority_code(1))
            with pytest.raises(ReplicaUnavailable):
                await replica.put_many([invoice_to_doc(vn(1))])


async def test_stalled_redis_raises_within_the_timeout_and_recovers(
        private_redis: tuple[str, int]) -> None:
    url, pid = private_redis
    async with open_redis_replica(url, namespace="stall:v1", op_timeout=0.3) as replica:
        await replica.put_many([invoice_to_doc(vn(1))])
        _stop(pid)
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                with pytest.raises(ReplicaUnavailable):
                    await replica.get(vn(1).doc_id)
                with pytest.raises(ReplicaUnavailable):
                    await replica.put_many([invoice_to_doc(vn(2))])
        finally:
            os.kill(pid, signal.SIGCONT)
        doc = await replica.get(vn(1).doc_id)
        assert doc == invoice_to_doc(vn(1))
        # Reads answered, writes held (for longer than the op_timeout, shorter than the
        # guard): each write, its generation with it, is refused after the op_timeout,
        # never waited for until Redis takes writes again.
        await replica.put_many([invoice_to_doc(vn(3))])
        admin = redis.Redis.from_url(url)
        try:
            await admin.execute_command("CLIENT", "PAUSE", "3000", "WRITE")
            async with asyncio.timeout(HANG_GUARD_S):
                with pytest.raises(ReplicaUnavailable):
                    await replica.put_many([invoice_to_doc(vn(4))])
                with pytest.raises(ReplicaUnavailable):
                    await replica.delete_many([vn(3).doc_id])
        finally:
            await admin.execute_command("CLIENT", "UNPAUSE")
            await admin.aclose()
        doc = await replica.get(vn(1).doc_id)
        assert doc == invoice_to_doc(vn(1))


async def test_only_redis_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="redis://"):
        async with open_redis_replica("http://127.0.0.1:6379"):
            pass


def test_decoded_invoices_are_reused_by_content_and_bounded() -> None:
    decoded = DecodedInvoices(max_entries=2)
    doc = invoice_to_doc(vn(1))
    first = decoded.decode(doc)
    assert first == vn(1)
    assert decoded.decode(dict(doc)) is first  # equal content, another dict: the same
    cancelled = {**doc, "lifecycle": "cancelled"}
    assert decoded.decode(cancelled).lifecycle is Lifecycle.CANCELLED
    assert decoded.decode(doc) is first
    decoded.decode(invoice_to_doc(vn(2)))  # a third entry: the memo starts over
    assert decoded.decode(doc) == vn(1)
    with pytest.raises(KeyError):
        decoded.decode({"doc_id": "vn:x"})


async def test_an_invoice_read_back_says_when_its_copy_was_written(replica: Replica) -> None:
    """`get_invoice` / `get_invoice_by_code`: the invoice as held, with `written_at`."""
    before = datetime.now(UTC)
    await replica.put_many([replica_doc(vn(1))])
    for hit in (await replica.get_invoice(vn(1).doc_id),
                await replica.get_invoice_by_code(authority_code(1))):
        assert hit is not None
        assert hit.invoice == vn(1)
        assert hit.written_at is not None
        assert before - timedelta(seconds=1) <= hit.written_at <= datetime.now(UTC)
    assert await replica.get_invoice(vn(2).doc_id) is None
    assert await replica.get_invoice_by_code(authority_code(2)) is None


async def test_written_at_in_the_earlier_spelling_or_not_said(replica: Replica) -> None:
    await replica.put_many([{**invoice_to_doc(vn(1)), "written_at": "2026-11-22T09:00:00"},
                            {**invoice_to_doc(vn(2)),
                             "replicated_at": "2026-11-22T09:00:00+07:00"},
                            invoice_to_doc(vn(3))])
    said = [hit.written_at if hit else "miss"
            for hit in [await replica.get_invoice(vn(n).doc_id) for n in (1, 2, 3)]]
    assert said == [datetime(2026, 11, 22, 9, tzinfo=UTC),  # no offset: UTC
                    datetime(2026, 11, 22, 2, tzinfo=UTC),
                    None]  # not said: the caller answers as of now


async def test_a_document_of_a_stale_shape_is_a_miss(replica: Replica) -> None:
    await replica.put_many([{"doc_id": vn(1).doc_id, "authority_code": authority_code(1)}])
    assert await replica.get(vn(1).doc_id) is not None  # the document is there
    assert await replica.get_invoice(vn(1).doc_id) is None
    assert await replica.get_invoice_by_code(authority_code(1)) is None


async def _seen(replica: RedisReplica, max_age: float = 5.0) -> object | None:
    """The generation once a read started now has come back."""
    await asyncio.sleep(GENERATION_REFRESH_S)  # the last read is old enough to read again
    replica.seen_generation(max_age)  # starts the read
    for _ in range(200):  # polled, not timed
        await asyncio.sleep(0.02)
        if replica._generation_read is None:
            break
    return replica.seen_generation(max_age)


async def test_every_write_of_any_process_changes_the_generation_others_see() -> None:
    namespace = f"test-{uuid.uuid4().hex[:12]}:v1"
    try:
        async with open_redis_replica(REDIS_URL, namespace=namespace) as one, \
                open_redis_replica(REDIS_URL, namespace=namespace) as two:
            assert await _seen(one) is None  # nothing written yet: unknown
            await two.put_many([invoice_to_doc(vn(1))])
            first = await _seen(one)
            assert first is not None
            assert await _seen(one) == first  # nobody wrote since
            await two.delete_many([vn(2).doc_id])  # nothing to delete: nothing changed
            assert await _seen(one) == first
            await two.delete_many([vn(1).doc_id])
            second = await _seen(one)
            assert second not in (None, first)
            await two.put_many([invoice_to_doc(vn(1))])
            assert await _seen(one) not in (None, first, second)
            assert one.seen_generation(0.0) is None  # older than the caller allows
            await one.put_many([invoice_to_doc(vn(2))])  # its own write: read again
            assert one.seen_generation(5.0) is None
            assert await _seen(one) not in (None, first, second)
        assert one.seen_generation(5.0) is not None  # closed: the last read, none started
        assert one._generation_read is None
    finally:
        await _delete_namespace(namespace)


async def test_the_in_memory_replica_counts_its_writes() -> None:
    replica = MemoryReplica()
    before = replica.seen_generation(0.0)
    await replica.put_many([invoice_to_doc(vn(1))])
    after = replica.seen_generation(0.0)
    assert after != before
    assert replica.seen_generation(0.0) == after
    await replica.delete_many([vn(1).doc_id])
    assert replica.seen_generation(0.0) != after
