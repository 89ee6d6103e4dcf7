"""Keeping answers flowing through outages: replica, breaker, gap ledger, reconciler, reports.

Imports `indexer` only. What it does for users: docs/outages.md.
"""
