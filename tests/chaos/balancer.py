"""A real load balancer for the chaos tests: Debian's nginx (`./run tests` installs it) in
front of service processes on 127.0.0.1, configured as compose.yaml's balancer is
(deploy/nginx.conf): idempotent requests that meet a dead upstream (a refused or reset
connection, a timeout, a 502) are sent to the next one; a POST is never sent twice."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from tests.chaos.procs import Process

CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 16m;
    upstream verify {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://verify;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 1s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )
    assert found, "nginx is missing: ./run tests installs it (apt-get install nginx)"
    return found


class NginxProcess(Process):
    """nginx in the foreground on `port`, balancing over `upstreams` (loopback ports)."""

    def __init__(self, prefix: Path, port: int, upstreams: Sequence[int]) -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams
        )
        config = prefix / "nginx.conf"
        config.write_text(CONFIG.format(prefix=prefix, port=port, servers=servers))
        super().__init__(
            "nginx",
            [nginx_binary(), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config)],
            prefix / "nginx.out",
        )
        self.port = port
        self.prefix = prefix
        self.error_log = prefix / "error.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_ready(self, timeout: float = 15.0) -> None:
        self.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if not self.alive():
                    raise AssertionError(
                        f"nginx exited at start\n{self.tail()}\n"
                        f"{self.error_log.read_text(errors='replace')}"
                    ) from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not listen\n{self.tail()}") from None
                time.sleep(0.05)

    def retried(self) -> int:
        """How many times nginx gave up on an upstream for a request (and tried the next,
        when there was one): its error log's upstream errors."""
        try:
            text = self.error_log.read_text(errors="replace")
        except OSError:
            return 0
        return sum(
            "while connecting to upstream" in line
            or "upstream prematurely" in line
            or "while reading response header from upstream" in line
            for line in text.splitlines()
        )

    def answered(self, method: str, status: int) -> int:
        """Requests of `method` nginx answered `status` (its access log)."""
        try:
            lines = (self.prefix / "access.log").read_text(errors="replace").splitlines()
        except OSError:
            return 0
        return sum(f'"{method} ' in line and f'" {status} ' in line for line in lines)
