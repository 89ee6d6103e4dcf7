"""Fixtures of the chaos tests: private osmem-server and redis-server processes (a fault must
never touch the session's shared servers), service processes that are always cleaned up,
and their logs printed when a test fails."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import aiohttp
import pytest
from osmem_server import OsmemServer

from tests.chaos.load import REQUEST_TIMEOUT
from tests.chaos.procs import Process, RedisProcess, free_port, thaw

#: Small settings so that an outage is noticed and left within a second or two.
FAST_FALLBACK = {
    "INVOICE_PRIMARY_TIMEOUT_MS": "300",
    "INVOICE_PRIMARY_WRITE_TIMEOUT_MS": "1000",
    "INVOICE_BREAKER_FAILURES": "2",
    "INVOICE_BREAKER_OPEN_SECONDS": "1",
    "INVOICE_PROBE_INTERVAL_SECONDS": "1",
    "INVOICE_GAP_GRACE_HOURS": "0",
}

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None],
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a service process: this one's without any INVOICE_ setting, then
    insecure local mode (loopback only; every caller is admin, no rate limits muddle the
    counts), the data directory and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_")}
    return {**env, "INVOICE_INSECURE_LOCAL": "1", "INVOICE_DATA_DIR": str(data_dir),
            "INVOICE_LOG_FORMAT": "json", **extra}


@pytest.fixture
def processes(request: pytest.FixtureRequest) -> Iterator[list[Process]]:
    """Register every process a test starts here: all are stopped (continued first, then
    terminated, then killed) whatever happens, and their logs shown if the test failed."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()
        if request.node.stash.get(_FAILED, False):
            for proc in started:
                print(proc.tail(60))


@pytest.fixture
def osmem() -> Iterator[OsmemServer]:
    """An osmem-server of this test's own (freezing the session's would stall other tests).
    It keeps everything in memory and exits with this process."""
    server = OsmemServer.start(japanese=False)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            thaw(server.pid)  # in case the test froze it
        server.close()
        if server.process.stdout is not None:  # the launcher leaves its pipe open
            server.process.stdout.close()
        if server.process.stdin is not None:
            server.process.stdin.close()


@pytest.fixture
def redis_server(tmp_path: Path, processes: list[Process]) -> RedisProcess:
    """A private redis-server on a free port (never the shared one on 6379)."""
    redis = RedisProcess(tmp_path / "redis.log", free_port())
    processes.append(redis)
    redis.start_ready()
    return redis


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        yield session

