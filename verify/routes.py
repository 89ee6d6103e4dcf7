"""Every route of the service, in one list. Each has a name, which is its access rule's key
in `verify/access/roles.py` and its operation in `/openapi.json`."""

from __future__ import annotations

from aiohttp import web

from verify.access import views as access_views
from verify.http import openapi
from verify.intake import views as intake_views
from verify.lookup import batch, file_check, lines
from verify.lookup import views as lookup_views
from verify.ops import gaps, health, journal, metrics, outages, reconcile, registry
from verify.qr import views as qr_views
from verify.reports import views as report_views

API = "/api/v1"


def setup_routes(app: web.Application) -> None:
    app.router.add_routes([
        web.post(f"{API}/packages", intake_views.post_package, name="packages.create"),
        web.get(f"{API}/invoices/lookup", lookup_views.lookup, name="invoices.lookup"),
        web.post(f"{API}/verify/batch", batch.verify_batch, name="verify.batch"),
        web.post(f"{API}/verify/file", file_check.verify_file, name="verify.file"),
        web.get(f"{API}/invoices/{{id}}/lines", lines.invoice_lines,
                name="invoices.lines"),
        web.get(f"{API}/invoices/{{id}}/original.xml", lookup_views.original_xml,
                name="invoices.original"),
        web.get(f"{API}/taxpayers/{{id}}", lookup_views.taxpayer, name="taxpayers.get"),
        web.post(f"{API}/verify/qr", qr_views.verify_photo, name="verify.qr"),
        web.post(f"{API}/verify/qr-text", qr_views.verify_text, name="verify.qr_text"),
        web.get(f"{API}/invoices/{{id}}/qr.png", qr_views.invoice_qr_png,
                name="invoices.qr_png"),
        web.get(f"{API}/reports/missing", report_views.missing_report, name="reports.missing"),
        web.post(f"{API}/reports/ledger", report_views.ledger_report, name="reports.ledger"),
        web.post(f"{API}/admin/keys", access_views.create_key, name="admin.keys.create"),
        web.get(f"{API}/admin/keys", access_views.list_keys, name="admin.keys.list"),
        web.delete(f"{API}/admin/keys/{{key_id}}", access_views.revoke_key,
                   name="admin.keys.revoke"),
        web.get(f"{API}/admin/audit", access_views.audit_trail, name="admin.audit"),
        web.post(f"{API}/admin/registry", registry.import_registry,
                 name="admin.registry.upload"),
        web.get(f"{API}/gaps", gaps.list_gaps, name="gaps.list"),
        web.get(f"{API}/gaps/{{id}}", gaps.get_gap, name="gaps.get"),
        web.get(f"{API}/outages", outages.list_outages, name="outages.list"),
        web.post(f"{API}/outages", outages.declare_outage, name="outages.declare"),
        web.post(f"{API}/reconcile", reconcile.start_reconcile, name="reconcile.start"),
        web.get(f"{API}/reconcile/status", reconcile.reconcile_status,
                name="reconcile.status"),
        web.get(f"{API}/journal", journal.list_entries, name="journal.list"),
        web.post(f"{API}/journal/{{seq}}/retry", journal.retry_entry,
                 name="journal.retry"),
        web.delete(f"{API}/journal/{{seq}}", journal.drop_entry, name="journal.drop"),
        web.get("/metrics", metrics.metrics, name="metrics"),
        web.get("/healthz", health.healthz, name="health"),
        web.get("/readyz", health.readyz, name="ready"),
        web.get("/openapi.json", openapi.serve, name="openapi"),
    ])
