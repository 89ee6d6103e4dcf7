"""`setup_receipts(app)`: the receipts' routes and their keys on the service's app
(docs/receipts.md). Called from `verify.app.create_app` right after the API's routes, so the
access check (`verify.access.middleware.check_routes`) sees these routes too."""

from __future__ import annotations

from aiohttp import web

from verify.receipts import views
from verify.receipts.state import receipts_ctx

API = "/api/v1"


def setup_receipts(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.get("/.well-known/jwks.json", views.jwks, name="receipts.jwks"),
            web.post(f"{API}/receipts/verify", views.verify_receipt, name="receipts.verify"),
            web.post(f"{API}/receipts/pdf", views.receipt_pdf, name="receipts.pdf"),
        ]
    )
    app.cleanup_ctx.append(receipts_ctx)
