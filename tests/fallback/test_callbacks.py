"""Gap callbacks as a receiver sees them: signed when a secret is set, and never sent to a
loopback or private address unless that is allowed. A real HTTP receiver on 127.0.0.1 and a
real gap ledger file."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fallback.callbacks import (
    SIGNATURE_HEADER,
    CallbackNotifier,
    CallbackPolicy,
    is_public,
    sign,
)
from fallback.gaps import open_gap_ledger
from tests.fallback.test_gaps import vn_request

SECRET = "s" * 40


@dataclass
class Receiver:
    base: str
    bodies: list[bytes] = field(default_factory=list)
    signatures: list[str | None] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server: TestServer
    got = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        got.bodies.append(await request.read())
        got.signatures.append(request.headers.get(SIGNATURE_HEADER))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    got.base = f"http://127.0.0.1:{server.port}"
    try:
        yield got
    finally:
        await server.close()


async def deliver(tmp_path: Path, url: str, policy: CallbackPolicy) -> tuple[int, int, str]:
    """A resolved gap whose requester left `url`; one delivery run. Returns sent, failed and
    the error recorded with the requester."""
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path) as ledger:
        gap = await ledger.record(vn_request(callback_url=url))
        await ledger.drain()
        await ledger.resolve(gap.id, "found")
        done = await CallbackNotifier(ledger, policy).deliver_due()
    with sqlite3.connect(path) as conn:
        (error,) = conn.execute("SELECT notify_error FROM gap_requesters").fetchone()
    return done.sent, done.failed, error or ""


async def test_a_callback_is_signed_over_its_exact_body(tmp_path: Path,
                                                        receiver: Receiver) -> None:
    before = int(time.time())
    policy = CallbackPolicy(secret=SECRET, allow_private=True)
    assert (await deliver(tmp_path, f"{receiver.base}/hook", policy))[:2] == (1, 0)
    (body,), (header,) = receiver.bodies, receiver.signatures
    assert header is not None
    fields = dict(part.split("=", 1) for part in header.split(","))
    assert before <= int(fields["t"]) <= int(time.time())
    expected = hmac.new(SECRET.encode(), fields["t"].encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(fields["v1"], expected.hexdigest())
    assert json.loads(body)["event"] == "gap.resolved"
    # a receiver with another secret, or a changed body, would not match
    assert sign("t" * 40, body, int(fields["t"])) != header
    assert sign(SECRET, body + b" ", int(fields["t"])) != header


async def test_without_a_secret_the_callback_is_unsigned(tmp_path: Path,
                                                         receiver: Receiver) -> None:
    policy = CallbackPolicy(allow_private=True)
    assert (await deliver(tmp_path, f"{receiver.base}/hook", policy))[:2] == (1, 0)
    assert receiver.signatures == [None]


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "127.1", "2130706433", "127.0.0.1.",
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # fullwidth digits
    "127\u30020\u30020\u30021",  # ideographic full stops
])
async def test_loopback_callbacks_are_refused_unless_allowed(
        tmp_path: Path, receiver: Receiver, host: str) -> None:
    url = f"{receiver.base}/hook".replace("127.0.0.1", host)
    sent, failed, error = await deliver(tmp_path, url, CallbackPolicy(secret=SECRET))
    assert (sent, failed) == (0, 1)
    assert error.startswith("blocked: ")
    assert "not globally routable" in error
    assert receiver.bodies == []  # nothing reached the receiver


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fe80::1%eth0", False),
    ("fd00::1", False), ("::ffff:127.0.0.1", False), ("not-an-address", False),
    ("64:ff9b::7f00:1", False), ("64:ff9b::5db8:d822", True), ("2002:7f00:1::", False),
    ("::7f00:1", False), ("fec0::1", False),
])
def test_which_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public(address) is public
