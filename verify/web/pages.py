"""Every page, in one table: its path, the API route whose roles and budget it has, and
its methods (`verify.web.dispatch.Page`)."""

from __future__ import annotations

from verify.lookup.batch import MAX_BODY as BATCH_BODY
from verify.ops import reconcile
from verify.reports.views import MAX_BODY as LEDGER_BODY
from verify.web import (
    auditor_views,
    auth_views,
    batch_views,
    desk_views,
    link_qr,
    operator_views,
    receipt_views,
    scan_views,
    watch_views,
)
from verify.web.dispatch import Page
from verify.web.static_files import StaticFiles

GET, POST, BOTH = frozenset({"GET"}), frozenset({"POST"}), frozenset({"GET", "POST"})
NOT_FOUND = Page(auth_views.not_found, None)
NOT_ALLOWED = Page(auth_views.not_allowed, None)


def pages(static: StaticFiles) -> dict[str, Page]:
    return {
        "/web/": Page(auth_views.home, None, any_role=True),
        "/web/sign-in": Page(auth_views.sign_in_page, None, BOTH),
        "/web/sign-out": Page(auth_views.sign_out_page, None, POST, any_role=True),
        "/web/language": Page(auth_views.switch_language, None, POST),
        "/web/static/*": Page(static.serve, None),
        "/web/desk": Page(desk_views.desk, "invoices.lookup"),
        "/web/receipt.pdf": Page(
            receipt_views.receipt_pdf, "receipts.pdf", POST, form_limit=receipt_views.FORM_LIMIT
        ),
        "/web/watch": Page(watch_views.watch, "watches.create", POST),
        "/web/watches": Page(watch_views.watches_page, "watches.events"),
        "/web/qr": Page(link_qr.link_qr, "invoices.qr_png"),
        "/web/scan": Page(scan_views.scan, "verify.qr_text"),
        "/web/scan/photo": Page(scan_views.scan_photo, "verify.qr", POST, json=True),
        "/web/scan/text": Page(scan_views.scan_text, "verify.qr_text", POST, json=True),
        "/web/batch": Page(batch_views.batch_page, "verify.batch", BOTH, form_limit=BATCH_BODY),
        "/web/batch/result": Page(batch_views.batch_result, "verify.batch"),
        "/web/batch/download": Page(batch_views.batch_download, "verify.batch"),
        "/web/ledger": Page(
            batch_views.ledger_page, "reports.ledger", BOTH, form_limit=LEDGER_BODY
        ),
        "/web/ledger/result": Page(batch_views.ledger_result, "reports.ledger"),
        "/web/ledger/download": Page(batch_views.ledger_download, "reports.ledger"),
        "/web/auditor": Page(auditor_views.auditor, "reports.missing"),
        "/web/auditor/export": Page(auditor_views.export, "reports.missing"),
        "/web/operator": Page(operator_views.operator_page, "journal.list"),
        "/web/operator/outage": Page(operator_views.declare, "outages.declare", POST),
        "/web/operator/status": Page(reconcile.reconcile_status, "reconcile.status", json=True),
    }
