"""A service that decoded QR photos exits without nanobind's leak report.

zxing-cpp's objects (the decoders' `BarcodeFormats`) were still alive when the interpreter
exited: the service freezes its start-up heap (`verify.cli.heap`), so the reference cycles
that hold the decode pool are never collected, and nanobind printed a screen of
`nanobind: leaked ...` lines at every exit. The pool lets its decoders go when it closes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.verify.live_server import live_server
from verify.qr import encode

TEXT = "IVQR1|cn|044031900111|17919920|18827.03|2025-01-03"


def test_serve_exits_without_nanobind_leak_report(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with live_server(data, INVOICE_LOG_LEVEL="INFO") as server:
        status, body = server.call(
            "POST", "/api/v1/verify/qr", encode.render_png(TEXT), content_type="image/png"
        )
        assert status == 200, body
        (code,) = json.loads(body)["codes"]
        assert code["payload"]["raw"] == TEXT  # zxing-cpp decoded it
    log = server.log_path.read_text(errors="replace")
    assert "start-up heap frozen" in log  # the condition that kept the decoders alive
    assert "nanobind" not in log, log[-3000:]
