"""Intake throughput on the embedded default: invoices/s for JSON and XML packages through the
whole intake (parse, validate, chain rules, durable commit), against a baseline measured in
the same run: the same rows written straight into the same SQLite schema (store cost only).

    .venv/bin/python -m bench.intake [--invoices 20000] [--rounds 3]

Each round loads into a fresh temporary data directory; figures are medians over rounds.
Signed XML packages are measured when `--signed` is given and signing support is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from lxml import etree
from osmem_server import OsmemServer  # type: ignore[import-untyped]

from indexer.intake import Intake
from indexer.model import Invoice
from indexer.package import package_from_json
from indexer.rules import RuleConfig
from indexer.signature import TrustAnchors, seller_signature_violations
from indexer.store.elasticsearch import default_client, open_elasticsearch_store
from indexer.store.es_mappings import invoice_source
from indexer.store.protocol import StoredPackage
from indexer.store.sqlite import open_sqlite_store
from indexer.validate import validate_invoice
from indexer.vn_xml import parse_xml_package
from tests.factories import vn_invoice
from tests.indexer.store.plain_json import plain_json_client
from tests.pki import make_pki
from tests.xml_factories import sign_hdon, signed_xml_package, xml_package
from verify.demo import build_demo

REPO = Path(__file__).resolve().parents[1]
#: A measured run: (invoices accepted, seconds of the timed part, or None to time it all).
Runner = Callable[[Path], Coroutine[Any, Any, tuple[int, float | None]]]


def demo_packages(count: int) -> list[dict[str, Any]]:
    """`count` invoices (VN and CN) from the demo generator, in packages of 500."""
    per_series = max(100, count // 8 + 1)
    plan = build_demo(per_series=per_series)
    packages, total = [], 0
    for package in plan.packages:
        invoices = package.get("invoices", [])
        if not invoices:
            continue
        take = invoices[:count - total]
        packages.append({**package, "invoices": take, "declared_count": len(take)})
        total += len(take)
        if total >= count:
            break
    return packages


async def run_json(data_dir: Path, packages: list[dict[str, Any]]) -> tuple[int, None]:
    async with open_sqlite_store(data_dir / "invoices.sqlite3") as store:
        intake = Intake(store, RuleConfig())
        accepted = 0
        for raw in packages:
            result = await intake.ingest(package_from_json(raw, max_items=10**6))
            accepted += result.notice["accepted"]
        return accepted, None


async def run_xml(data_dir: Path, bodies: list[bytes]) -> tuple[int, None]:
    async with open_sqlite_store(data_dir / "invoices.sqlite3") as store:
        intake = Intake(store, RuleConfig())
        accepted = 0
        for body in bodies:
            parsed = parse_xml_package(body, max_items=10**6)
            result = await intake.ingest(parsed.package, parsed.originals)
            accepted += result.notice["accepted"]
        return accepted, None


def signed_bodies(count: int) -> tuple[list[bytes], bytes]:
    """`count` VN invoices of one seller, each signed (rsa-sha256, as real invoices), in
    packages of 500, and the PEM of the CA they chain to. Signing is preparation, untimed."""
    pki = make_pki()
    cert = pki.leaf()

    def sign(hdon: etree._Element, invoice: dict[str, Any]) -> etree._Element:
        return sign_hdon(hdon, pki.seller_key, [cert, pki.root])

    bodies = []
    for start in range(1, count + 1, 500):
        invoices = [vn_invoice(n) for n in range(start, min(start + 500, count + 1))]
        bodies.append(signed_xml_package(invoices, sign, package_id=f"SIGNED-{start}"))
    return bodies, pki.anchors_pem


async def run_signed(data_dir: Path, bodies: list[bytes],
                     anchors: TrustAnchors) -> tuple[int, None]:
    """Parse, verify every seller signature (on this thread: one core), validate, store."""
    rules = RuleConfig()
    async with open_sqlite_store(data_dir / "invoices.sqlite3") as store:
        intake = Intake(store, rules)
        accepted = 0
        for body in bodies:
            parsed = parse_xml_package(body, max_items=10**6)
            checks = seller_signature_violations(parsed.package, parsed.originals, anchors,
                                                 rules)
            result = await intake.ingest(parsed.package, parsed.originals, checks)
            accepted += result.notice["accepted"]
        return accepted, None


async def run_es(url: str, packages: list[dict[str, Any]]) -> tuple[int, None]:
    """JSON intake into Elasticsearch: bulk writes of invoices and authority codes per
    package, through the store's patient client (osmem-server here unless --es-url)."""
    factory = plain_json_client if "INVOICE_ES_URL" not in os.environ else default_client
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    async with open_elasticsearch_store(url, index_prefix=prefix, client_factory=factory) as store:
        intake = Intake(store, RuleConfig())
        accepted = 0
        for raw in packages:
            result = await intake.ingest(package_from_json(raw, max_items=10**6))
            accepted += result.notice["accepted"]
        return accepted, None


def _prepared(packages: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[Invoice]]]:
    """Each package with its invoices validated (preparation of the baselines, untimed)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    prepared: list[tuple[dict[str, Any], list[Invoice]]] = []
    for raw in packages:
        checked = (validate_invoice(i, RuleConfig(), package_id=raw["package_id"], now=now)[0]
                   for i in raw["invoices"])
        prepared.append((raw, [i for i in checked if i is not None]))
    return prepared


async def run_es_floor(url: str, packages: list[dict[str, Any]]) -> tuple[int, float]:
    """The floor of intake into Elasticsearch: the same documents the store writes for each
    package (its authority codes and invoices, `invoice_source`), already validated, as one
    plain `_bulk` per package through the same (patient) client, into a fresh layout."""
    factory = plain_json_client if "INVOICE_ES_URL" not in os.environ else default_client
    prefix = f"bench-floor-{uuid.uuid4().hex[:8]}"
    prepared = _prepared(packages)
    async with open_elasticsearch_store(url, index_prefix=prefix, client_factory=factory) as store:
        await store.ensure_layout()
        bodies = []
        for raw, invoices in prepared:
            operations: list[dict[str, Any]] = []
            for inv in invoices:
                if inv.authority_code:
                    operations += [{"create": {"_index": store.layout.codes,
                                               "_id": inv.authority_code}},
                                   {"authority_code": inv.authority_code, "doc_id": inv.doc_id,
                                    "package_id": raw["package_id"]}]
            for inv in invoices:
                operations += [{"create": {"_index": store.layout.invoices, "_id": inv.doc_id}},
                               invoice_source(inv)]
            bodies.append((operations, len(invoices)))
        started = time.perf_counter()
        total = 0
        for operations, count in bodies:
            resp = await store.patient.bulk(operations=operations)
            if resp["errors"]:
                raise RuntimeError("the floor's _bulk had item errors")
            total += count
        return total, time.perf_counter() - started  # timed without the preparation


async def run_baseline(data_dir: Path, packages: list[dict[str, Any]]) -> tuple[int, float]:
    """The same invoices, already validated, committed straight to the store: what storage
    alone costs, so the ratio shows what the intake rules add."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    prepared = _prepared(packages)
    async with open_sqlite_store(data_dir / "invoices.sqlite3") as store:
        started = time.perf_counter()
        total = 0
        for raw, invoices in prepared:
            record = StoredPackage(raw["package_id"], raw["sender"], "0" * 64, now, {})
            await store.commit_package(record, invoices, [])
            total += len(invoices)
        return total, time.perf_counter() - started  # timed without the preparation


def measure(runner: Runner, rounds: int) -> list[tuple[float, int]]:
    """(seconds, invoices accepted) per round, each in a fresh data directory."""
    results = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
            started = time.perf_counter()
            accepted, timed = asyncio.run(runner(Path(tmp)))
            results.append((timed if timed is not None else time.perf_counter() - started,
                            accepted))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    parser.add_argument("--invoices", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--signed", type=int, default=2000,
                        help="signed XML invoices (0: skip that path)")
    parser.add_argument("--es", type=int, default=5000,
                        help="invoices for the Elasticsearch path (0: skip); osmem-server on "
                             "loopback unless INVOICE_ES_URL names a real cluster")
    args = parser.parse_args(argv)
    command = shlex.join([".venv/bin/python", "-m", "bench.intake",
                          *(sys.argv[1:] if argv is None else argv)])
    print(f"reproduce: cd {REPO} && {command}")
    print(f"machine: nproc {os.cpu_count()}, python {platform.python_version()}, "
          f"{platform.machine()}")
    packages = demo_packages(args.invoices)
    n = sum(len(p["invoices"]) for p in packages)
    vn_only = [{**p, "invoices": [i for i in p["invoices"] if i["scheme"] == "vn"]}
               for p in packages]
    vn_only = [{**p, "declared_count": len(p["invoices"])} for p in vn_only if p["invoices"]]
    bodies = [xml_package(p["invoices"], package_id=p["package_id"], sender=p["sender"])
              for p in vn_only]
    n_xml = sum(len(p["invoices"]) for p in vn_only)
    print(f"{n} invoices in {len(packages)} JSON packages; {n_xml} VN invoices in "
          f"{len(bodies)} XML packages ({sum(map(len, bodies)) / 1e6:.1f} MB); "
          f"{args.rounds} round(s), fresh store each")

    paths: list[tuple[str, int, Runner]] = [
        ("store only (baseline)", n, lambda d: run_baseline(d, packages)),
        ("JSON intake", n, lambda d: run_json(d, packages)),
        ("XML intake", n_xml, lambda d: run_xml(d, bodies))]
    if args.signed:
        signed, pem = signed_bodies(args.signed)
        anchors = TrustAnchors.from_pem(pem, "bench CA")
        print(f"{args.signed} signed VN invoices in {len(signed)} XML packages "
              f"({sum(map(len, signed)) / 1e6:.1f} MB), seller signatures verified")
        paths.append(("signed XML intake", args.signed,
                      lambda d: run_signed(d, signed, anchors)))
    osmem = None
    if args.es:
        es_packages = demo_packages(args.es)
        es_count = sum(len(p["invoices"]) for p in es_packages)
        url = os.environ.get("INVOICE_ES_URL")
        if url is None:
            osmem = OsmemServer.start(japanese=False)
            url = osmem.url
        print(f"{es_count} invoices into Elasticsearch at {url} "
              f"({'osmem-server' if osmem else 'INVOICE_ES_URL'})")
        es_url = url
        paths.append(("ES floor (plain _bulk)", es_count,
                      lambda d: run_es_floor(es_url, es_packages)))
        paths.append(("JSON intake into ES", es_count,
                      lambda d: run_es(es_url, es_packages)))
    rows = []
    try:
        rows = _measure_all(paths, args.rounds)
    finally:
        if osmem is not None:
            osmem.close()
            if osmem.process.stdout is not None:
                osmem.process.stdout.close()
    if not rows:
        return 1
    print(f"\n{'path':<24} {'invoices/s':>11}   per round")
    for name, rate, rates in rows:
        print(f"{name:<24} {rate:>11,.0f}   " + " ".join(f"{r:,.0f}" for r in rates))
    base = rows[0][1]
    print("\nratios to store only (one core: intake is serial): "
          + "; ".join(f"{name} {rate / base:.3f}" for name, rate, _ in rows[1:]))
    rates = {name: per_round for name, _, per_round in rows}
    if "ES floor (plain _bulk)" in rates:
        floor, es = rates["ES floor (plain _bulk)"], rates["JSON intake into ES"]
        ratios = [e / f for e, f in zip(es, floor, strict=True)]
        print(f"JSON intake into ES / its floor (same documents, one plain _bulk per package, "
              f"same client, same run): {statistics.median(ratios):.2f} per round "
              + " ".join(f"{r:.2f}" for r in ratios))
    print(f"reproduce: cd {REPO} && {command}")
    return 0


def _measure_all(paths: list[tuple[str, int, Runner]],
                 rounds: int) -> list[tuple[str, float, list[float]]]:
    rows = []
    for name, count, runner in paths:
        results = measure(runner, rounds)
        accepted = [value for _, value in results]
        if any(a != count for a in accepted):
            print(f"! {name}: accepted {accepted} of {count}: the generator and rules disagree")
            return []
        rates = [count / elapsed for elapsed, _ in results]
        rows.append((name, statistics.median(rates), rates))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
