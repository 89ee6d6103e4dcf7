"""Wiring of the reconciler (`fallback.reconciler`) for the service and the CLI alike: the
journaled intake, the gap answerer (the final verification answer of a gap, in the shape
every lookup answers), the callback policy and the grace period, all from settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from fallback.breaker import BreakerState, utc_now
from fallback.callbacks import CallbackNotifier, CallbackPolicy
from fallback.gaps import Gap, SqliteGapLedger
from fallback.health import DependencyGuard
from fallback.journaled_intake import JournaledIntake
from fallback.outages import OutageLog, System
from fallback.reconciler import GapAnswerer, ReconcileProgress, Reconciler
from fallback.replica import Replica
from indexer.intake import Intake
from indexer.journal import IntakeJournal
from indexer.keys import key_from_doc_id
from indexer.model import Invoice
from indexer.signature import TrustAnchors
from indexer.store import InvoiceStore
from verify.answer import build_answer
from verify.lookup import LookupQuery, MatchFields
from verify.settings import Settings

AUTHORITY_CODE_PREFIX = "authority_code:"


def gap_query(gap: Gap) -> LookupQuery:
    """The lookup a gap stands for (its key; the caller's `issued_on` if it gave one)."""
    match = MatchFields(issued_on=gap.issued_on)
    if gap.lookup_key.startswith(AUTHORITY_CODE_PREFIX):
        return LookupQuery("vn", None, gap.lookup_key.removeprefix(AUTHORITY_CODE_PREFIX),
                           match)
    key = key_from_doc_id(gap.lookup_key)
    if key is None:
        raise ValueError(f"gap {gap.id} has an unreadable lookup key {gap.lookup_key!r}")
    return LookupQuery(key.scheme, key, None, match)


def gap_answerer(store: InvoiceStore) -> GapAnswerer:
    """Answers a page of gaps from the primary: one batched read for keyed gaps, one read
    per authority code."""

    async def answer(gaps: Sequence[Gap]) -> dict[str, tuple[dict[str, Any],
                                                              Invoice | None]]:
        queries = {gap.id: gap_query(gap) for gap in gaps}
        by_id = await store.get_invoices(
            {q.key.doc_id for q in queries.values() if q.key is not None})
        now = utc_now()
        out: dict[str, tuple[dict[str, Any], Invoice | None]] = {}
        for gap_id, query in queries.items():
            if query.key is not None:
                invoice = by_id.get(query.key.doc_id)
            else:
                assert query.authority_code is not None
                invoice = await store.find_by_authority_code(query.authority_code)
            out[gap_id] = (build_answer(query, invoice, as_of=now), invoice)
        return out

    return answer


def primary_ready(primary: DependencyGuard, outages: OutageLog) -> bool:
    """The reconciler may run: the primary's breaker closed, no maintenance of it."""
    return (primary.breaker.state is BreakerState.CLOSED
            and outages.active(System.PRIMARY) is None)


def journaled_intake(settings: Settings, intake: Intake, journal: IntakeJournal,
                     replica: Replica, primary: DependencyGuard, outages: OutageLog,
                     anchors: TrustAnchors) -> JournaledIntake:
    return JournaledIntake(
        intake, journal, replica, primary, outages, anchors=anchors,
        max_items=settings.max_package_items,
        write_timeout=settings.fallback.primary_write_timeout_ms / 1000,
        max_attempts=settings.fallback.journal_max_attempts)


def reconciler(settings: Settings, intake: JournaledIntake, gaps: SqliteGapLedger,
               *, on_progress: Callable[[ReconcileProgress], None] | None = None,
               ) -> Reconciler:
    fb = settings.fallback
    policy = CallbackPolicy(max_attempts=fb.callback_max_attempts,
                            backoff_base=float(fb.callback_backoff_seconds),
                            secret=fb.callback_secret,
                            allow_private=fb.callback_allow_private)
    return Reconciler(
        intake, gaps, gap_answerer(intake.intake.store), intake.replica,
        notifier=CallbackNotifier(gaps, policy), grace=timedelta(hours=fb.gap_grace_hours),
        journal_retention=timedelta(days=fb.journal_retention_days),
        batch=fb.reconcile_batch_entries, batch_bytes=fb.reconcile_batch_bytes,
        on_progress=on_progress,
        ready=lambda: primary_ready(intake.primary, intake.outages))
