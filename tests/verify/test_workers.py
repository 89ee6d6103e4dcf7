"""`invoice-verify serve --workers N`: the journal slots, and the real command (processes
sharing the port, one SIGKILLed and started again in its slot, SIGTERM stopping all)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.metrics_text import samples
from verify.cli.workers import claim_journal, journal_name

REPO = Path(__file__).resolve().parents[2]


def test_each_process_claims_a_journal_of_its_own(tmp_path: Path) -> None:
    first = claim_journal(tmp_path)
    second = claim_journal(tmp_path)
    third = claim_journal(tmp_path, prefer=5)
    assert (first.name, second.name, third.name) == (
        "journal.sqlite3", "journal-2.sqlite3", "journal-5.sqlite3")
    taken = claim_journal(tmp_path, prefer=2)  # slot 2 is held: the lowest free one
    assert taken.name == "journal-3.sqlite3"
    os.close(second.fd)  # the process holding slot 2 died
    assert claim_journal(tmp_path, prefer=2).name == "journal-2.sqlite3"
    assert journal_name(1) == "journal.sqlite3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, repr(exc)


def _until(what: str, check: object, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _workers(parent: int) -> set[int]:
    """The parent's children that serve (the spawned workers, not its resource tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    data, port = tmp_path / "data", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOICE_", "PROMETHEUS"))}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "verify", "serve", "--workers", "2", "--insecure-local",
         "--port", str(port), "--data-dir", str(data)],
        cwd=REPO, env={**env, "INVOICE_REPLICA_WARM_UP": "0"}, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc, f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_workers_share_the_port_and_a_dead_one_comes_back_in_its_slot(
        served: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    proc, url, log = served
    data = log.parent / "data"
    # /readyz is one worker's answer (whichever the kernel picked): worker 2 may still be
    # opening its stores, so its journal file is waited for, not assumed.
    _until("both workers, each with its journal", lambda: len(_workers(proc.pid)) == 2
           and _get(url + "/readyz")[0] == 200 and (data / "journal.sqlite3").exists()
           and (data / "journal-2.sqlite3").exists())

    def metrics() -> dict[str, float]:
        return samples(_get(url + "/metrics")[1])

    closed = 'invoice_breaker_state{state="closed",system="primary"}'
    _until("every worker in /metrics", lambda: metrics().get(closed) == 2)  # summed
    for _ in range(20):
        assert _get(url + "/healthz")[0] == 200
    served_count = metrics()['invoice_http_requests_total{method="GET",route="/healthz",'
                             'status="200"}']
    assert served_count == 20  # any worker's /metrics counts every worker's requests

    before = _workers(proc.pid)
    victim = max(before)
    os.kill(victim, signal.SIGKILL)
    _until("the dead worker started again", lambda: len(_workers(proc.pid)) == 2
           and victim not in _workers(proc.pid))
    _until("the new worker serving", lambda: metrics().get(closed) == 2)
    started = [json.loads(line) for line in log.read_text().splitlines()
               if line.startswith("{") and '"worker started"' in line]
    journals = [(entry["worker"], entry["journal"]) for entry in started]
    assert sorted(journals) == [(1, "journal.sqlite3"), (2, "journal-2.sqlite3"),
                                (2, "journal-2.sqlite3")], journals

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert _workers(proc.pid) == set()
