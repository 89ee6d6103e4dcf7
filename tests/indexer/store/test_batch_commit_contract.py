"""Batched intake (`Intake.ingest_many` over `get_packages` + `commit_packages`), on every
backend: a batch judges and stores each package exactly as ingesting them one by one would,
including packages of the batch that build on each other, replays and id conflicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from indexer.intake import BatchItem, Intake, IntakeResult
from indexer.package import Package, PackageError, package_from_json
from indexer.rules import RuleConfig
from indexer.store import InvoiceStore
from indexer.store.protocol import PackageCommit, PackageExistsError, StoredPackage
from indexer.store.sqlite import open_sqlite_store
from tests.factories import authority_code, cancel, package, vn_invoice, vn_key

RECEIVED = datetime(2022, 5, 16, 3, 0, tzinfo=UTC)


def packages() -> list[Package]:
    """Each builds on the ones before it: 2 cancels an invoice of 1, 3 replaces another,
    4 repeats a key of 1 (rejected), 5 cancels what 2 already cancelled (rejected)."""
    raw: list[dict[str, Any]] = [
        package([vn_invoice(1), vn_invoice(2), vn_invoice(3)], package_id="B-1"),
        package([vn_invoice(4)], [cancel(1)], package_id="B-2"),
        package([vn_invoice(5, kind="replacement", original=vn_key(2))], package_id="B-3"),
        package([vn_invoice(3)], package_id="B-4"),
        package(notices=[cancel(1, notice_id="04SS-2022-0002")], package_id="B-5"),
    ]
    return [package_from_json(json.loads(json.dumps(p))) for p in raw]


def items(batch: list[Package], offset: int = 0) -> list[BatchItem]:
    return [BatchItem(p, RECEIVED + timedelta(seconds=offset + n)) for n, p in enumerate(batch)]


def notices(results: list[IntakeResult | PackageError]) -> list[dict[str, Any]]:
    out = []
    for result in results:
        assert isinstance(result, IntakeResult)
        out.append(result.notice)
    return out


async def test_a_batch_is_judged_like_one_package_after_another(store: InvoiceStore) -> None:
    batch = packages()
    results = notices(await Intake(store, RuleConfig()).ingest_many(items(batch)))
    assert [n["result"] for n in results] == [
        "accepted", "accepted", "accepted", "rejected", "rejected"]
    assert [e["rule"] for e in results[3]["items"][0]["errors"]] == ["chain.duplicate_key"]
    assert [e["rule"] for e in results[4]["items"][0]["errors"]] == [
        "notice.target.not_in_force"]
    stored = await store.get_invoices([f"vn:0100109106:1:C22TAA:{n}" for n in range(1, 6)])
    assert {doc_id.rsplit(":", 1)[1]: inv.lifecycle.value for doc_id, inv in stored.items()} == {
        "1": "cancelled", "2": "replaced", "3": "issued", "4": "issued", "5": "issued"}
    assert set(await store.get_packages(["B-1", "B-3", "B-5", "B-9"])) == {"B-1", "B-3", "B-5"}


async def test_the_same_packages_one_by_one_give_the_same_notices(
        store: InvoiceStore, tmp_path: Path) -> None:
    batch = packages()
    batched = notices(await Intake(store, RuleConfig()).ingest_many(items(batch)))
    async with open_sqlite_store(tmp_path / "one-by-one.sqlite3") as other:
        intake = Intake(other, RuleConfig())
        alone = [(await intake.ingest(i.package, received_at=i.received_at)).notice
                 for i in items(batch)]
    assert batched == alone


async def test_replays_and_id_conflicts_inside_a_batch(store: InvoiceStore) -> None:
    intake = Intake(store, RuleConfig())
    first = packages()[:2]
    await intake.ingest_many(items(first))
    reused = package_from_json(package([vn_invoice(9)], package_id="B-1"))
    results = await intake.ingest_many(items([first[1], reused, packages()[2]], offset=10))
    replay, conflict, fresh = results
    assert isinstance(replay, IntakeResult)
    assert replay.replayed
    assert isinstance(conflict, PackageError)
    assert conflict.code == "package.id_conflict"
    assert isinstance(fresh, IntakeResult)
    assert fresh.notice["result"] == "accepted"
    assert await store.get_invoice("vn:0100109106:1:C22TAA:9") is None


async def test_commit_packages_is_all_or_nothing_on_a_taken_id(store: InvoiceStore) -> None:
    record = StoredPackage("C-1", "0101300842", "d1", RECEIVED, {"result": "accepted"})
    await store.commit_packages([PackageCommit(record, [], [])])
    again = StoredPackage("C-2", "0101300842", "d2", RECEIVED, {"result": "accepted"})
    with pytest.raises(PackageExistsError):
        await store.commit_packages([PackageCommit(again, [], []),
                                     PackageCommit(record, [], [])])
    if store.backend == "sqlite":  # one transaction: nothing of the batch stayed
        assert await store.get_package("C-2") is None


async def test_authority_code_packages_name_the_package_that_brought_each_code(
        store: InvoiceStore) -> None:
    await Intake(store, RuleConfig()).ingest_many(items(packages()[:2]))
    assert await store.authority_code_packages(
        [authority_code(1), authority_code(4), authority_code(99)]) == {
        authority_code(1): "B-1", authority_code(4): "B-2"}
