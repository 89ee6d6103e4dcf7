"""The request metrics and the `CountedBy` counts (answers, gaps, probe failures) are kept
in plain Python and handed to prometheus-client in bulk (`Metrics.flush`): what `/metrics`
shows must be what one counter `inc` and one histogram `observe` per request, and one `inc`
per count, showed, in one process and summed over the files of several (`serve
--workers`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.multiprocess import MultiProcessCollector

from fallback.metrics import LATENCY_BUCKETS, Metrics
from tests.metrics_text import samples

REPO = Path(__file__).resolve().parents[2]
HTTP = ("invoice_http_requests", "invoice_http_request_duration_seconds", "invoice_answers",
        "invoice_probe_failures")
#: (route, method, status, seconds): on bucket bounds, between them, beyond the last one
REQUESTS = [
    ("/api/v1/invoices/lookup", "GET", 200, seconds)
    for seconds in (0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.003, 0.05, 0.7, 10.0, 30.0, 31.5)
] + [("/api/v1/gaps/{id}", "GET", 404, 0.002), ("unmatched", "GET", 404, 0.0001),
     ("/api/v1/packages", "POST", 200, 1.2), ("/api/v1/invoices/lookup", "GET", 429, 0.001)]
#: The answer each request counts (a lookup's source and status), as the lookup path does.
ANSWERS = [("primary", "valid"), ("replica", "valid"), ("primary", "not_found")]


def _count(metrics: Metrics, requests: list[tuple[str, str, int, float]]) -> None:
    for n, request in enumerate(requests):
        metrics.answers[ANSWERS[n % len(ANSWERS)]] += 1
        metrics.observe_request(*request)


def _one_by_one(requests: list[tuple[str, str, int, float]], times: int = 1,
                probe_failures: int = 0) -> dict[str, float]:
    """The series as prometheus-client's own objects give them, one call per request."""
    registry = CollectorRegistry()
    count = PromCounter("invoice_http_requests", "", ["route", "method", "status"],
                        registry=registry)
    latency = Histogram("invoice_http_request_duration_seconds", "",
                        ["route", "method", "status"], buckets=LATENCY_BUCKETS,
                        registry=registry)
    answers = PromCounter("invoice_answers", "", ["source", "status"], registry=registry)
    failures = PromCounter("invoice_probe_failures", "", ["system"], registry=registry)
    for _ in range(times):
        for n, (route, method, status, seconds) in enumerate(requests):
            answers.labels(*ANSWERS[n % len(ANSWERS)]).inc()
            count.labels(route, method, str(status)).inc()
            latency.labels(route, method, str(status)).observe(seconds)
    if probe_failures:
        failures.labels("replica").inc(probe_failures)
    return _http(generate_latest(registry))


def _http(exposition: bytes) -> dict[str, float]:
    return {series: value for series, value in samples(exposition.decode()).items()
            if series.startswith(HTTP)}


def _same(shown: dict[str, float], expected: dict[str, float]) -> None:
    """Counts and buckets exactly; a sum of seconds as floats added in another order."""
    assert shown.keys() == expected.keys()
    for series, value in expected.items():
        assert shown[series] == (pytest.approx(value) if "_sum{" in series else value), series


def test_the_exposition_shows_every_request_as_one_observe_each_would() -> None:
    metrics = Metrics()
    _count(metrics, REQUESTS)
    _same(_http(metrics.exposition()), _one_by_one(REQUESTS))
    _count(metrics, REQUESTS)  # counted after an exposition: added to what it handed over
    metrics.probe_failures["replica"] += 3
    _same(_http(metrics.exposition()), _one_by_one(REQUESTS, times=2, probe_failures=3))


#: A worker: counts its share of the requests (and their answers) in an event loop, lets
#: the loop turn, then (with "probe") counts probe failures as the health monitor does,
#: followed by a `sample`; it exits without ever writing an exposition.
_WORKER = """
import asyncio, json, sys
from fallback.metrics import Metrics
from tests.fallback.test_metrics_requests import _count

async def main() -> None:
    metrics = Metrics()
    _count(metrics, [tuple(r) for r in json.loads(sys.argv[1])])
    await asyncio.sleep(0)
    if sys.argv[2] == "probe":
        metrics.probe_failures["replica"] += 2
        await metrics.sample()

asyncio.run(main())
"""


def test_workers_files_add_up_without_a_scrape_of_each(tmp_path: Path) -> None:
    """In multiprocess mode each worker hands its requests and their counts to its file at
    the end of the event loop's turn, and a health probe's failures at its `sample`, so any
    worker's `/metrics` (the files merged) counts every worker's, including those of a
    worker that was never scraped."""
    shares = [REQUESTS[::2], REQUESTS[1::2] + REQUESTS[:3]]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    for share, then in zip(shares, ("-", "probe"), strict=True):
        subprocess.run([sys.executable, "-c", _WORKER, json.dumps(share), then], env=env,
                       check=True, cwd=REPO, timeout=60)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(tmp_path))  # type: ignore[no-untyped-call]
    expected = _one_by_one(shares[0])
    for series, value in _one_by_one(shares[1], probe_failures=2).items():
        expected[series] = expected.get(series, 0) + value
    _same(_http(generate_latest(merged)), expected)


_STOPPING_WORKER = """
import asyncio, sys
from verify.services import open_services
from verify.settings import Settings

async def main() -> None:
    settings = Settings.from_env({"INVOICE_DATA_DIR": sys.argv[1]})
    async with open_services(settings) as services:
        services.metrics.probe_failures["replica"] += 3  # counted, no flush, no sample

asyncio.run(main())
"""


def test_a_stopping_worker_hands_over_what_it_counted_last(tmp_path: Path) -> None:
    """Counts made since the last flush (a health round's, a background task's) reach the
    worker's file when its services close, not only at a request's end or a sample."""
    files = tmp_path / "metrics"
    files.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(files), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", _STOPPING_WORKER, str(tmp_path / "data")], env=env,
                   check=True, cwd=REPO, timeout=120)
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(files))  # type: ignore[no-untyped-call]
    failures = {name: value for name, value in samples(generate_latest(merged).decode()).items()
                if name.startswith("invoice_probe_failures_total")}
    assert list(failures.values()) == [3.0], failures
