"""Keeping answers flowing through outages: replica, breaker, gap ledger, reconciler, reports.

Imports `indexer` only. Filled in by the fallback issues; see ARCHITECTURE.md.
"""
