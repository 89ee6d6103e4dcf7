"""The store protocol every backend implements and the contract suite pins.

A store holds accepted invoices (by document id, see `indexer.keys`) and the acceptance
notice of every package it committed, so a re-posted package is answered from here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from indexer.model import Invoice
from indexer.store.numbering_reports import NumberingScope, NumberRun


class StoreUnavailableError(Exception):
    """The store could not answer now (down, stalled, overloaded). Every backend raises a
    subclass, so callers (the breaker, degraded answers) never name a backend."""


class PackageExistsError(Exception):
    """`commit_package` found the package id already committed (a concurrent re-post)."""


class DuplicateInvoiceError(Exception):
    """A new invoice collided with a stored key or authority code (a concurrent intake)."""


@dataclass(frozen=True, slots=True)
class StoredPackage:
    package_id: str
    sender: str
    digest: str  # sha256 of the canonical package, to tell a replay from an id reuse
    received_at: datetime
    notice: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PackageCommit:
    """One package's writes: its record, the invoices it created (as it left them) and the
    stored invoices it changed."""

    package: StoredPackage
    new: Sequence[Invoice]
    changed: Sequence[Invoice]


class InvoiceStore(Protocol):
    backend: str

    @property
    def reads_inline(self) -> bool:
        """Whether its point reads run on the event loop now without ever suspending
        (SQLite, bounded by its busy timeout): a timeout armed around such a read could never
        fire, so the request path arms none (`fallback.lookup.resilience`). False for a store
        read over the network."""

    async def ping(self) -> None:
        """Raise if the store cannot answer now."""

    async def get_invoice(self, doc_id: str) -> Invoice | None: ...

    async def get_invoices(self, doc_ids: Iterable[str]) -> dict[str, Invoice]: ...

    async def find_by_authority_code(self, code: str) -> Invoice | None: ...

    async def existing_authority_codes(self, codes: Iterable[str]) -> set[str]: ...

    async def authority_code_packages(self, codes: Iterable[str]) -> dict[str, str]:
        """For each taken code among `codes`, the id of the package that brought it (how a
        replay tells its own half-committed writes from another package's)."""

    async def get_package(self, package_id: str) -> StoredPackage | None: ...

    async def commit_package(self, package: StoredPackage, new: Sequence[Invoice],
                             changed: Sequence[Invoice]) -> None:
        """Store the package record, insert `new` invoices and overwrite `changed` ones.

        All or nothing. Raises `PackageExistsError` if the package id is taken and
        `DuplicateInvoiceError` if a new invoice's key or authority code is taken.
        """

    async def get_packages(self, package_ids: Iterable[str]) -> dict[str, StoredPackage]:
        """The committed packages among `package_ids`, by id (one read for a batch)."""

    async def commit_packages(self, batch: Sequence[PackageCommit]) -> None:
        """`commit_package` for several packages, in order (the intake journal's drain).
        All or nothing where the backend has transactions (SQLite: one transaction, one
        fsync); else package by package, each as `commit_package`. Same errors."""

    async def count_invoices(self) -> int: ...

    async def scan_invoices(self, issued_from: date, issued_until: date, *,
                            after: str | None = None, limit: int = 1000) -> list[Invoice]:
        """Invoices whose local issue date lies in [issued_from, issued_until), ordered by
        document id, the page after document id `after` (paging by a unique key, never by
        offset, so a scan of millions stays cheap on every backend)."""

    def numbering_runs(self, scope: NumberingScope, *,
                       page_size: int = 5_000) -> AsyncGenerator[list[NumberRun], None]:
        """The runs of consecutive numbers (same cancelled state) of every numbering sequence
        in `scope`, in (scheme, sequence, first number) order, vn before cn, a page at a time.
        Computed by the store (see `indexer.store.numbering_reports`), never by reading the
        invoices; 数电 invoices are never included. Consumers close it (`aclosing`)."""

    async def scan_buyer_invoices(self, buyer_tax_id: str, issued_from: date,
                                  issued_until: date, *, after: IssuedPosition | None = None,
                                  limit: int = 1000) -> list[Invoice]:
        """The buyer's invoices whose local issue date lies in [issued_from, issued_until),
        ordered by (issue date, document id), the page after `after` (pass
        `IssuedPosition.of(the last invoice of the previous page)`): paged by a unique key,
        never by offset, so reconciling a large buyer's ledger stays cheap on every backend."""


@dataclass(frozen=True, slots=True, order=True)
class IssuedPosition:
    """A place in (local issue date, document id) order: just after this invoice."""

    issued_on: date
    doc_id: str

    @classmethod
    def of(cls, invoice: Invoice) -> IssuedPosition:
        return cls(invoice.issued_on, invoice.doc_id)
