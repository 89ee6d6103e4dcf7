"""Real processes for the chaos tests, and the faults done to them.

Every process starts in a session (process group) of its own, writes its output to a log
file in the test's tmp directory (shown when a test fails), and is always cleaned up: a
stopped process is continued before it is terminated, and a process that does not end
within the grace period is killed with its whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp

from tests.chaos.polling import poll

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def freeze(pid: int) -> None:
    """SIGSTOP a child process (a hung node: its sockets stay open, nothing answers) and
    return once the kernel reports it stopped."""
    os.kill(pid, signal.SIGSTOP)
    os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOWAIT)


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Process:
    """One child process in its own process group, output to `log_path`."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.alive(), f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def freeze(self) -> None:
        freeze(self.pid)

    def thaw(self) -> None:
        thaw(self.pid)

    def kill(self) -> None:
        """SIGKILL the whole group (the fault, or the last resort of `stop`)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, grace: float = 10.0) -> None:
        """Continue (in case a test froze it), terminate, kill after `grace` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        return f"---- {self.name} log ({self.log_path}):\n{log_tail(self.log_path, lines)}"


class ServiceProcess(Process):
    """The verification service on `port`; `argv` and `env` say which deployment."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: Mapping[str, str],
                 port: int) -> None:
        super().__init__("service", argv, log_path, {**env, "INVOICE_PORT": str(port)})
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def move_to(self, port: int) -> None:
        """Listen on another port at the next start (a fresh one avoids waiting for the
        killed process's socket)."""
        assert self.env is not None
        self.port = port
        self.env["INVOICE_PORT"] = str(port)

    async def ready(self, http: aiohttp.ClientSession, *, path: str = "/readyz",
                    within: float = 45.0) -> None:
        """Until `path` answers 200; fails early (with the log) if the process exits."""

        async def answered() -> bool:
            if not self.alive():
                raise AssertionError(f"the service exited at start\n{self.tail()}")
            try:
                async with http.get(self.url + path,
                                    timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    return resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await poll(answered, within, f"the service at {self.url}{path} to answer 200",
                   detail=self.tail)


def embedded_service(data_dir: Path, log_path: Path, env: Mapping[str, str],
                     port: int) -> ServiceProcess:
    """`invoice-verify serve` itself (the embedded default: SQLite + in-memory replica)."""
    argv = [sys.executable, "-m", "verify", "serve", "--data-dir", str(data_dir)]
    return ServiceProcess(argv, log_path, env, port)


def runner_service(log_path: Path, env: Mapping[str, str], port: int) -> ServiceProcess:
    """`tests.chaos.service`: the same app, Elasticsearch clients through the osmem adapter."""
    return ServiceProcess([sys.executable, "-m", "tests.chaos.service"], log_path, env, port)


class RedisProcess(Process):
    """A private redis-server (no persistence: a restart comes back empty, as a real
    cache node without persistence does)."""

    def __init__(self, log_path: Path, port: int) -> None:
        super().__init__("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--loglevel", "notice"],
                         log_path)
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start_ready(self, timeout: float = 15.0) -> None:
        """Start and return once it answers PING (synchronous: a few milliseconds)."""
        self.start()
        deadline = time.monotonic() + timeout
        while not self.ping():
            if not self.alive():
                raise AssertionError(f"redis-server exited at start\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not answer PING\n{self.tail()}")
            time.sleep(0.02)
