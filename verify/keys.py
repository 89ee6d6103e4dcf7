"""Typed application state: every `app[...]` key, declared once."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from fallback.gaps import GapLedger
from fallback.journaled_intake import JournaledIntake
from fallback.lookup.resilience import Resilience
from fallback.outages import OutageLog
from fallback.reconciler import Reconciler
from fallback.replica import Replica
from indexer.intake import Intake
from indexer.signature import TrustAnchors
from indexer.store import InvoiceStore
from indexer.store.elasticsearch import ClientFactory
from indexer.store.originals import OriginalStore
from indexer.store.registry import RegistryStore
from verify.access.service import Access
from verify.qr.pool import DecodePool
from verify.services import Services
from verify.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", InvoiceStore)
REGISTRY = web.AppKey("registry", RegistryStore)
REPLICA = web.AppKey("replica", Replica)
ORIGINALS = web.AppKey("originals", OriginalStore)
INTAKE = web.AppKey("intake", Intake)
ACCESS = web.AppKey("access", Access)
TRUST_ANCHORS = web.AppKey("trust_anchors", TrustAnchors)
QR_POOL = web.AppKey("qr_pool", DecodePool)
RESILIENCE = web.AppKey("resilience", Resilience)
GAPS = web.AppKey("gaps", GapLedger)
OUTAGES = web.AppKey("outages", OutageLog)
#: `POST /packages` goes through here: the journal first, then the primary when it can.
JOURNALED_INTAKE = web.AppKey("journaled_intake", JournaledIntake)
RECONCILER = web.AppKey("reconciler", Reconciler)
#: How the Elasticsearch clients are built; None means the official client as configured.
ES_CLIENT_FACTORY: web.AppKey[ClientFactory | None] = web.AppKey("es_client_factory")
#: The whole service graph (`verify.services`); the keys above are its parts.
SERVICES = web.AppKey("services", Services)
#: Reconcile runs started over HTTP: owned by the app's context, cancelled and awaited at
#: shutdown before the journal and the gap ledger close.
RECONCILE_RUNS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("reconcile_runs")
