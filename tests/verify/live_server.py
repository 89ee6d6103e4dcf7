"""A real `invoice-verify serve` process on a loopback port with its data directory in tmp,
for the tests that exercise the service from outside (the fuzz and schemathesis suites).
Budgets and burst guards are raised so that thousands of requests from one key are not
throttled: those suites test what the service answers, not its rate limits."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

UNTHROTTLED = {"INVOICE_RATE_KEY_BURST": "1000000", "INVOICE_RATE_KEY_PER_MINUTE": "1000000",
               "INVOICE_RATE_INVOICE_PER_DAY": "1000000",
               "INVOICE_RATE_INVOICE_PER_KEY_PER_DAY": "1000000",
               "INVOICE_RATE_MISSES_PER_HOUR": "1000000"}


#: What the service logs (with the traceback) when it answered a bug as `internal_error`, cut
#: a streamed answer, or answered one code, row or line of a request as failed.
_BUG_MESSAGES = ("unhandled error", "failed after its answer began",
                 "a QR code of a photo could not be answered", "a batch row could not be answered",
                 "a ledger line could not be checked")


@dataclass(frozen=True)
class LiveServer:
    base: str
    token: str
    data_dir: Path
    log_path: Path

    def unhandled_errors(self) -> list[str]:
        """The log's lines about bugs (`_BUG_MESSAGES`)."""
        return [line for line in self.log_path.read_text(errors="replace").splitlines()
                if any(m in line for m in _BUG_MESSAGES)]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str | None = "application/json", timeout: float = 30,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        headers = {**self.auth, **(headers or {})}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=body, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def post_json(self, path: str, body: object) -> tuple[int, bytes]:
        return self.call("POST", path, json.dumps(body).encode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(data_dir: Path, **env: str) -> Iterator[LiveServer]:
    """`python -m verify serve` with `data_dir`, until the block ends (then terminated). Its
    log goes to `data_dir/../<name>.log` (a file, not a pipe: a pipe nobody drains would stop
    the server once 64 KiB of tracebacks filled it)."""
    port = free_port()
    environ = {**os.environ, "INVOICE_DATA_DIR": str(data_dir), "INVOICE_PORT": str(port),
               "INVOICE_HOST": "127.0.0.1", "INVOICE_LOG_LEVEL": "WARNING", **UNTHROTTLED,
               **env}
    log_path = data_dir.with_name(data_dir.name + ".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "verify", "serve"], env=environ,
                                stderr=log, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while b"Running on" not in log_path.read_bytes():  # aiohttp's line, once it listens
            assert proc.poll() is None, f"server exited: {log_path.read_text()}"
            assert time.monotonic() < deadline, f"no start: {log_path.read_text()}"
            time.sleep(0.05)
        token = (data_dir / "admin.key").read_text().strip()
        yield LiveServer(f"http://127.0.0.1:{port}", token, data_dir, log_path)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
