"""Hostile uploads through the real app and real sockets (issue 15, points 1, 3 and 4): broken
multipart framing, bodies that arrive slowly or never end, chunked bodies past the limit,
pictures and spreadsheets whose headers claim far more than they carry. Each test checks the
4xx and a bound measured without timing anything (Pillow's allocated blocks, rows visited,
decode slots), and that the service still answers others."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp import web
from PIL import Image

from tests.conftest import Client
from tests.factories import BUYER, package, vn_invoice
from tests.indexer.test_ledger_file import hostile_sheet
from tests.verify.qr import images
from verify.app import create_app
from verify.keys import QR_POOL
from verify.settings import Settings

PHOTO = "/api/v1/verify/qr"
LEDGER = "/api/v1/reports/ledger"
MAY = {"buyer_tax_id": BUYER, "from": "2022-05-01", "to": "2022-05-31"}
CN_DIGITAL = "01,32,,23442000000014209621,112.00,20230215,,74AE"

AppMaker = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_cli(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path, admin_token: str
) -> AppMaker:
    """The real app with extra settings, called with the admin key."""

    async def make(**env: str) -> Client:
        settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"), **env})
        return await aiohttp_client(
            create_app(settings), headers={"Authorization": f"Bearer {admin_token}"}
        )

    return make


def multipart(boundary: str, *parts: tuple[str, bytes]) -> bytes:
    """A multipart/form-data body with the given (headers block, payload) parts."""
    out = b""
    for headers, payload in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + payload + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


FIELD = 'Content-Disposition: form-data; name="{}"; filename="x"\r\nContent-Type: {}'


@pytest.mark.parametrize("url", [PHOTO, LEDGER])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\nabc\r\n--x--\r\n"),  # no boundary at all
        ("multipart/form-data; boundary=" + "b" * 80, b"irrelevant"),  # boundary too long
        ("multipart/form-data; boundary=xx", b"no boundary line anywhere"),
        ("multipart/form-data; boundary=xx", multipart("xx", ("garbage header line", b"1"))),
        (
            "multipart/form-data; boundary=xx",
            multipart(
                "xx", ("Content-Disposition: form-data; name=image\r\n" + "X" * 20_000, b"1")
            ),
        ),
        ("multipart/form-data; boundary=xx", b"--xx\r\n" + b"Header: v\r\n" * 200 + b"\r\n1"),
    ],
)
async def test_broken_multipart_framing_is_400(
    cli: Client, url: str, content_type: str, body: bytes
) -> None:
    resp = await cli.post(
        url,
        params=MAY if url == LEDGER else None,
        data=body,
        headers={"Content-Type": content_type},
    )
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "bad_multipart"


async def _chunks(body: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("url", [PHOTO, LEDGER])
async def test_chunked_multipart_counts_every_part_toward_the_limit(
    make_cli: AppMaker, url: str
) -> None:
    """Three parts of 40 KiB against a 64 KiB limit, sent chunked (no Content-Length): each
    part alone fits, together they do not (60 MiB passed a 20 MiB limit this way)."""
    cli = await make_cli(INVOICE_QR_MAX_UPLOAD_BYTES=str(64 * 1024))
    name = "image" if url == PHOTO else "ledger"
    part = 40 * 1024 * b"1"
    body = multipart(
        "xx",
        (FIELD.format("note", "text/plain"), part),
        (FIELD.format("other", "text/plain"), part),
        (FIELD.format(name, "image/png"), part),
    )
    if url == LEDGER:  # the ledger's own limit is 32 MiB: three parts of 12 MiB
        part = 12 * 1024 * 1024 * b"1"
        body = multipart(
            "xx",
            (FIELD.format("note", "text/plain"), part),
            (FIELD.format("other", "text/plain"), part),
            (FIELD.format(name, "text/csv"), part),
        )
    resp = await cli.post(
        url,
        params=MAY if url == LEDGER else None,
        data=_chunks(body),
        headers={"Content-Type": "multipart/form-data; boundary=xx"},
    )
    assert resp.status == 413, await resp.text()
    assert (await resp.json())["error"]["code"] == "body_too_large"


class SlowClient:
    """A raw socket that sends a request's headers and the start of its body, then stalls."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def start(
        cls,
        cli: Client,
        path: str,
        token: str,
        *,
        length: int = 1_000_000,
        sent: bytes = b"\x89PNG",
        content_type: str = "image/png",
    ) -> SlowClient:
        reader, writer = await asyncio.open_connection(cli.server.host, cli.server.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n".encode()
            + sent
        )
        await writer.drain()
        return cls(reader, writer)

    async def status(self) -> int:
        line = await self.reader.readline()
        return int(line.split()[1])

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _token(cli: Client) -> str:
    return str(cli._session.headers["Authorization"]).removeprefix("Bearer ")


async def _requests_started(cli: Client, count: int) -> None:
    """Poll until the server is handling `count` requests (their headers read)."""
    runner = cli.server.runner
    assert runner is not None
    server = runner.server
    assert server is not None
    for _ in range(3000):
        if sum(1 for c in server.connections if c._current_request is not None) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the slow requests never reached the server")


async def test_slow_uploads_hold_no_decode_slot(make_cli: AppMaker) -> None:
    """More slow clients than decode slots, each stalled in its body: a normal photo is still
    decoded (before, each slow client held a slot from its first byte: 503 for everyone)."""
    cli = await make_cli(INVOICE_BODY_READ_TIMEOUT_S="60")
    pool = cli.app[QR_POOL]
    slow = [await SlowClient.start(cli, PHOTO, _token(cli)) for _ in range(pool.max_pending + 2)]
    try:
        await _requests_started(cli, len(slow))
        resp = await cli.post(
            PHOTO, data=images.qr_png(CN_DIGITAL), headers={"Content-Type": "image/png"}
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["outcome"] == "decoded"
        assert pool.pending == 0
    finally:
        for client in slow:
            await client.close()


@pytest.mark.parametrize("path", [PHOTO, "/api/v1/packages", "/api/v1/verify/batch"])
async def test_a_body_that_never_arrives_in_full_is_408(make_cli: AppMaker, path: str) -> None:
    cli = await make_cli(INVOICE_BODY_READ_TIMEOUT_S="1")
    slow = await SlowClient.start(
        cli,
        path,
        _token(cli),
        length=1000,
        sent=b"[",
        content_type="image/png" if path == PHOTO else "application/json",
    )
    try:
        assert await slow.status() == 408
    finally:
        await slow.close()
    lookup = await cli.get("/api/v1/invoices/lookup", params={"number": "1" * 20})
    assert lookup.status == 200  # the service answers others throughout


def rgba_png_with_rotation(side: int) -> bytes:
    """A valid all-transparent RGBA PNG of side x side pixels whose EXIF says "rotate 90",
    built row by row (a few hundred kilobytes, whatever it decodes to)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    compressor = zlib.compressobj(1)
    row = bytes(1 + side * 4)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    exif = Image.Exif()
    exif[0x0112] = 6
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"eXIf", exif.tobytes())
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def _blocks() -> int:
    stats = Image.core.get_stats()  # type: ignore[attr-defined]
    return int(stats["allocated_blocks"] + stats["reused_blocks"])


async def test_a_big_rgba_png_with_exif_rotation_is_refused_before_decoding(cli: Client) -> None:
    data = rgba_png_with_rotation(7071)  # 50 megapixels less 959: within the pixel limit
    before = _blocks()
    resp = await cli.post(PHOTO, data=io.BytesIO(data), headers={"Content-Type": "image/png"})
    assert resp.status == 413, await resp.text()
    details = (await resp.json())["error"]["details"]
    assert details["decoded_bytes"] == 7071 * 7071 * 4
    # No picture memory at all (Pillow's 16 MiB blocks); decoding it took about 440 MB.
    assert _blocks() - before == 0
    lookup = await cli.get("/api/v1/invoices/lookup", params={"number": "1" * 20})
    assert lookup.status == 200


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOMB_ROWS = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>number</t></is></c></row>'
    '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
)


@pytest.fixture
def workbooks_opened(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each call of openpyxl's `load_workbook` (about 2 ms of CPU however small the file),
    which still opens the workbook."""
    opened: list[int] = []
    load = openpyxl.load_workbook

    def counted(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        return load(*args, **kwargs)

    monkeypatch.setattr(openpyxl, "load_workbook", counted)
    return opened


async def test_an_xlsx_dimension_bomb_is_refused_through_the_report(
    cli: Client, workbooks_opened: list[int]
) -> None:
    """Refused from its row numbers before openpyxl opens the workbook at all."""
    resp = await cli.post(
        LEDGER, params=MAY, data=hostile_sheet(BOMB_ROWS), headers={"Content-Type": XLSX}
    )
    assert resp.status == 413, await resp.text()
    assert (await resp.json())["error"]["code"] == "ledger_too_large"
    assert workbooks_opened == []


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006"
_OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _sheet(rows: str) -> str:
    return f'<worksheet xmlns="{_MAIN}"><sheetData>{rows}</sheetData></worksheet>'


def two_sheets(*, bomb_first: bool) -> bytes:
    """A workbook written part by part: the ledger (a header and one line) in
    xl/worksheets/a.xml, the dimension bomb in xl/worksheets/b.xml, and workbook.xml listing
    a.xml first or, with `bomb_first`, b.xml first (so the part names say nothing)."""
    order = ["b", "a"] if bomb_first else ["a", "b"]
    ledger = '<row r="1"><c r="A1" t="inlineStr"><is><t>number</t></is></c></row>'
    ledger += '<row r="2"><c r="A2"><v>1</v></c></row>'
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    parts = {
        "[Content_Types].xml": (
            f'<Types xmlns="{_PACKAGE}/content-types"><Default Extension="rels" ContentType='
            '"application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{XLSX}.main+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/{n}.xml" ContentType="{sheet_type}"/>'
                for n in "ab"
            )
            + "</Types>"
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{_PACKAGE}/relationships"><Relationship '
            f'Id="r1" Type="{_OFFICE}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{_PACKAGE}/relationships">'
            + "".join(
                f'<Relationship Id="{n}" Type="{_OFFICE}/worksheet" Target="worksheets/{n}.xml"/>'
                for n in "ab"
            )
            + "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_OFFICE}"><sheets>'
            + "".join(
                f'<sheet name="{n}" sheetId="{i}" r:id="{n}"/>'
                for i, n in enumerate(order, start=1)
            )
            + "</sheets></workbook>"
        ),
        "xl/worksheets/a.xml": _sheet(ledger),
        "xl/worksheets/b.xml": _sheet(BOMB_ROWS),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return out.getvalue()


@pytest.mark.parametrize("bomb_first", [False, True])
async def test_only_the_first_worksheet_is_checked_and_read(
    cli: Client, workbooks_opened: list[int], bomb_first: bool
) -> None:
    """The sheet read is the first one the workbook lists, whatever its part is named:
    a bomb in another sheet refuses nothing, a bomb listed first is refused unopened."""
    resp = await cli.post(
        LEDGER, params=MAY, data=two_sheets(bomb_first=bomb_first), headers={"Content-Type": XLSX}
    )
    if bomb_first:
        assert resp.status == 413, await resp.text()
        assert (await resp.json())["error"]["code"] == "ledger_too_large"
        assert workbooks_opened == []
    else:
        assert resp.status == 200, await resp.text()
        assert resp.headers["X-Ledger-Lines"] == "1"
        assert workbooks_opened == [1]


@pytest.mark.parametrize(
    "cells",
    [
        {"tax_amount": "1e999999"},
        {"tax_amount": "1E+999999999"},
        {"total_amount": "sNaN"},
        {"amount": "9" * 5000},
        {"number": "²"},
        {"number": "9" * 5000},
        {"issued_on": "２０２２"},
    ],
)
async def test_a_hostile_ledger_line_is_answered_alone(cli: Client, cells: dict[str, str]) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1), vn_invoice(2)]))
    assert (await resp.json())["result"] == "accepted"
    header = [
        "seller_tax_id",
        "template",
        "series",
        "number",
        "tax_amount",
        "total_amount",
        "amount",
        "issued_on",
    ]
    rows: list[dict[str, Any]] = [
        {"seller_tax_id": "0100109106", "template": "1", "series": "C22TAA", "number": n}
        for n in (1, 2, 3)
    ]
    rows[1].update(cells)
    text = (
        ",".join(header)
        + "\n"
        + "".join(",".join(str(r.get(h, "")) for h in header) + "\n" for r in rows)
    )
    resp = await cli.post(
        LEDGER, params=MAY, data=text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert resp.status == 200, await resp.text()
    report = json.loads(await resp.text())
    assert [line["row"] for line in report["lines"]] == [2, 3, 4]
    assert report["lines"][0]["status"] == "valid"
    assert report["lines"][2]["status"] == "not_found"


async def test_a_client_leaving_mid_body_is_no_server_error(
    tmp_path: Path, admin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Served as `invoice-verify serve` serves it (web.run_app: a handler is not cancelled
    when its client leaves; the test server cancels it, which would hide this)."""
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data")})
    runner = web.AppRunner(create_app(settings), handler_cancellation=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {PHOTO} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
            f"{admin_token}\r\nContent-Type: image/png\r\n"
            "Content-Length: 1000\r\n\r\n\x89PNG".encode()
        )
        await writer.drain()
        server = runner.server
        assert server is not None
        for _ in range(3000):  # until the request's headers are read
            if any(c._current_request is not None for c in server.connections):
                break
            await asyncio.sleep(0.01)
        (connection,) = server.connections
        task = connection._task_handler
        assert task is not None
        writer.close()
        await writer.wait_closed()
        await asyncio.wait({task}, timeout=30)  # the request handled to its end
    finally:
        await runner.cleanup()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
