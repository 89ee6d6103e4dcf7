"""`invoice-verify serve` on an address it cannot listen on (issue 16 item 9): one line on
stderr that names the address and what to do, exit 1, and nothing started before it (the
command binds first: no data directory, admin key or store is created). Run as a user runs
it, in a subprocess, against a real socket bound by the test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_")}
    return subprocess.run(
        [sys.executable, "-m", "verify", "serve", "--data-dir", str(tmp_path / "data"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[2],
    )


def test_a_busy_port_is_one_line_and_exit_1(tmp_path: Path, busy_port: int) -> None:
    done = serve(tmp_path, "--host", "127.0.0.1", "--port", str(busy_port))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # was a traceback of 104 lines
    assert f"cannot listen on 127.0.0.1:{busy_port}: the address is already in use" in lines[0]
    assert "--port" in lines[0]
    assert done.stdout == ""
    assert not (tmp_path / "data").exists()  # refused before the stores were opened


def test_an_address_not_of_this_machine_is_one_line(tmp_path: Path) -> None:
    done = serve(tmp_path, "--host", "192.0.2.1", "--port", "8080")  # TEST-NET-1 (RFC 5737)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cannot listen on 192.0.2.1:8080: "), lines[0]
    assert "--host" in lines[0]
