"""A refused upload is still answered when the service runs as `invoice-verify serve` runs it
(`LINGERING_S`: a body refused before it was read in full is read and discarded for a
second after the answer, not ten): by a client that reads while it sends (aiohttp's) and by
one that sends its whole body first and reads after, with bodies larger than the sockets'
buffers, so the answer arrives only because the server went on reading. Through the real
app on a real socket, served with the same runner options as `serve`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from verify.app import create_app
from verify.cli.serve import LINGERING_S
from verify.settings import Settings

PHOTO = "/api/v1/verify/qr"
BATCH = "/api/v1/verify/batch"
LIMIT = 64 * 1024  # the photo limit of these tests
#: Far more than loopback's socket buffers hold (a few MiB each way).
BIG = 24 * 1024 * 1024


@pytest.fixture
async def base(tmp_path: Path) -> AsyncIterator[str]:
    settings = Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_QR_MAX_UPLOAD_BYTES": str(LIMIT)}
    )
    runner = web.AppRunner(
        create_app(settings), handler_cancellation=False, lingering_time=LINGERING_S
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def send_all_then_read(base: str, head: str, body: bytes) -> tuple[int, bytes]:
    """A client that writes the whole request before it reads a byte of the answer."""
    host, port = base.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        head_lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        length = next(
            int(line.split(":")[1])
            for line in head_lines
            if line.lower().startswith("content-length:")
        )
        return int(head_lines[0].split()[1]), await reader.readexactly(length)
    finally:
        writer.close()


def request_head(path: str, token: str, content_type: str, length: int) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )


async def test_a_body_declared_too_large_is_answered_to_a_client_that_sends_it_all(
    base: str, admin_token: str
) -> None:
    head = request_head(PHOTO, admin_token, "image/png", BIG)
    status, rest = await send_all_then_read(base, head, b"\0" * BIG)
    assert status == 413
    assert b'"body_too_large"' in rest


async def test_a_batch_past_its_rows_is_answered_to_a_client_that_sends_it_all(
    base: str, admin_token: str
) -> None:
    """Refused at its 101,002nd line, long before the end of its 24 MiB."""
    body = b"number\n" + b"1\n" * (BIG // 2)
    status, rest = await send_all_then_read(
        base, request_head(BATCH, admin_token, "text/csv", len(body)), body
    )
    assert status == 413
    assert b'"batch_too_large"' in rest


async def test_a_body_sent_without_a_key_is_answered_401(base: str) -> None:
    head = request_head(PHOTO, "not-a-key", "image/png", BIG)
    status, _ = await send_all_then_read(base, head, b"\0" * BIG)
    assert status == 401


async def test_a_chunked_upload_past_the_limit_is_answered_to_a_client_that_reads_early(
    base: str, admin_token: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(BIG // LIMIT):
            yield b"\0" * LIMIT

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://{base}{PHOTO}",
            data=chunks(),
            headers={"Content-Type": "image/png", "Authorization": f"Bearer {admin_token}"},
        ) as resp,
    ):
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "body_too_large"
