"""Two `invoice-verify serve` processes started together on one data directory, without
Elasticsearch, make one first admin key between them, and its `admin.key` works on both
(docs/deployment.md#several-workers-on-one-host; `verify.access.service.bootstrap_admin`).

Real processes, several times over, each time on a fresh directory. The race is between
two processes' check and creation, milliseconds apart in a start of seconds, so the test
lines them up: it holds the write lock of the directory's `access.sqlite3` (made first, as
a start makes it) until both processes have the file open, as a long write of a third
process would, then lets them go together.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from indexer.store.sqlite_files import private_dir
from tests.chaos.procs import free_port
from verify.access.db import open_access_db

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 4
WITHIN = 90.0  # a generous deadline for a loaded machine, never a measure
#: How long the first process to reach the keys is held for the other one: below the
#: service's SQLite busy timeout (5 s), past which the held process would give up starting.
#: A machine so loaded that the other is later than this starts them unaligned.
LINE_UP_S = 3.0


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, repr(exc)


def _start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOICE_", "PROMETHEUS"))}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "verify", "serve", "--port", str(port), "--data-dir",
             str(data)],
            cwd=REPO, env={**env, "INVOICE_REPLICA_WARM_UP": "0"}, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def _make_access_db(path: Path) -> None:
    async with open_access_db(path):
        pass


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # a descriptor closed while read
        return False


def _until(what: str, check: object, procs: list[subprocess.Popen[bytes]],
           logs: list[Path]) -> None:
    deadline = time.monotonic() + WITHIN
    while not check():  # type: ignore[operator]
        texts = [log.read_text() for log in logs]
        assert all(p.poll() is None for p in procs), texts
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {texts}"
        time.sleep(0.02)


def _one_start(tmp_path: Path, round_: int) -> None:
    """Two processes on a fresh directory, lined up at the keys; one admin key, on both."""
    data = tmp_path / f"data-{round_}"
    private_dir(data)
    access = data / "access.sqlite3"
    asyncio.run(_make_access_db(access))
    writer = sqlite3.connect(access, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    urls: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for name in ("a", "b"):
            port = free_port()
            logs.append(tmp_path / f"serve-{round_}-{name}.log")
            procs.append(_start(data, port, logs[-1]))
            urls.append(f"http://127.0.0.1:{port}")
        first_at: list[float] = []

        def lined_up() -> bool:
            arrived = [_has_open(p.pid, access) for p in procs]
            if any(arrived) and not first_at:
                first_at.append(time.monotonic())
            return all(arrived) or (bool(first_at) and time.monotonic() - first_at[0] > LINE_UP_S)

        _until("both processes at the keys", lined_up, procs, logs)
        writer.execute("ROLLBACK")
        _until("both processes serving",
               lambda: all(_get(url + "/healthz")[0] == 200 for url in urls), procs, logs)
        token = (data / "admin.key").read_text().strip()
        assert oct((data / "admin.key").stat().st_mode & 0o777) == "0o600"
        for url in urls:
            status, body = _get(url + "/api/v1/admin/keys", token)
            assert status == 200, (round_, url, body)
            admins = [k for k in json.loads(body)["keys"]
                      if k["role"] == "admin" and k["revoked_at"] is None]
            assert len(admins) == 1, (round_, admins)
        assert not list(data.glob(".admin.key.*")), "no temporary file left"
    finally:
        writer.close()
        for proc in procs:
            _stop(proc)


def test_two_processes_started_together_make_one_admin_key(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        _one_start(tmp_path, round_)
