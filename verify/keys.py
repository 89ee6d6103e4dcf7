"""Typed application state: every `app[...]` key, declared once."""

from __future__ import annotations

from aiohttp import web

from indexer.intake import Intake
from indexer.signature import TrustAnchors
from indexer.store import InvoiceStore
from indexer.store.originals import OriginalStore
from indexer.store.registry import RegistryStore
from verify.access.service import Access
from verify.qr.pool import DecodePool
from verify.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", InvoiceStore)
REGISTRY = web.AppKey("registry", RegistryStore)
ORIGINALS = web.AppKey("originals", OriginalStore)
INTAKE = web.AppKey("intake", Intake)
ACCESS = web.AppKey("access", Access)
QR_POOL = web.AppKey("qr_pool", DecodePool)
TRUST_ANCHORS = web.AppKey("trust_anchors", TrustAnchors)
