"""Every route of the service, in one list."""

from __future__ import annotations

from aiohttp import web

from verify import views

API = "/api/v1"


def setup_routes(app: web.Application) -> None:
    app.router.add_routes([
        web.post(f"{API}/packages", views.post_package),
        web.get(f"{API}/invoices/lookup", views.lookup),
        web.get("/healthz", views.healthz),
        web.get("/readyz", views.readyz),
    ])
