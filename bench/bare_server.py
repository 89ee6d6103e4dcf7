"""The baseline for `bench.lookup`: a bare aiohttp app with one GET handler that answers a
constant JSON dict about the size of a real verification answer. No middlewares, no store,
no access log: what aiohttp and the event loop cost on their own on this machine.

Run: `python -m bench.bare_server --port 8081` (listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiohttp import web

LOOKUP_PATH = "/api/v1/invoices/lookup"

#: Shaped like a `valid` answer of the service
#: (docs/formats.md#lookups-and-the-verification-answer).
ANSWER: dict[str, Any] = {
    "status": "valid",
    "scheme": "vn",
    "source": "primary",
    "degraded": False,
    "as_of": "2026-11-22T02:10:00.123456Z",
    "gap_id": None,
    "key": {"seller_tax_id": "0108888817", "template": "1", "series": "C25TAA", "number": 1},
    "invoice": {
        "id": "vn:0108888817:1:C25TAA:1",
        "issued_at": "2025-01-02T09:15:00+07:00",
        "issued_on": "2025-01-02",
        "currency": "VND",
        "amount_before_tax": "6708926",
        "tax_amount": "536714",
        "total_amount": "7245640",
        "seller_tax_id": "0108888817",
        "seller_name": "Công ty Cổ phần Bia Hà Nội",
        "buyer_tax_id": None,
        "buyer_name": None,
        "authority_code": "00C9AC2B6D63678E11FBF337AE9A03DCD6",
        "type_code": "1",
        "kind": "original",
        "lifecycle": "issued",
        "original": None,
        "redacted": ["buyer_tax_id", "buyer_name"],
    },
    "mismatches": [],
    "related": [],
}


async def lookup(request: web.Request) -> web.Response:
    return web.json_response(ANSWER)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_routes([web.get(LOOKUP_PATH, lookup), web.get("/healthz", healthz)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop (the service's INVOICE_EVENT_LOOP)")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None,
                print=None, shutdown_timeout=5, loop=loop)


if __name__ == "__main__":
    main()
