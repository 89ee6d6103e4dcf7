"""Stores of accepted invoices behind one protocol (`InvoiceStore`)."""

from indexer.store.protocol import InvoiceStore, PackageExistsError, StoredPackage

__all__ = ["InvoiceStore", "PackageExistsError", "StoredPackage"]
