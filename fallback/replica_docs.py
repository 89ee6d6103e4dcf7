"""The replica's documents: what it holds for an invoice (`replica_doc`: the flat document
of `indexer.codec` and when the copy was written), and how a document reads back as an
invoice (`InvoiceReads`, which both replicas are: `get_invoice` -> `ReplicaHit`, decoded once
per content by `DecodedInvoices`)."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from indexer.codec import invoice_from_doc, invoice_to_doc
from indexer.model import Invoice

Doc = dict[str, Any]
log = logging.getLogger("fallback.replica")


def replica_doc(invoice: Invoice) -> Doc:
    """What the replica holds for an invoice: its flat document and `replicated_at`, the
    moment it was written (a degraded answer's `as_of`: how fresh the copy is)."""
    doc = invoice_to_doc(invoice)
    doc["replicated_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return doc


@dataclass(frozen=True, slots=True)
class ReplicaHit:
    """An invoice as the replica holds it, and when that copy was written if its document
    says (`written_at`: a degraded answer's `as_of`, how fresh the copy is)."""

    invoice: Invoice
    written_at: datetime | None


#: Fields a replica document may carry to say when it was written (`replica_doc` writes the
#: first; the second is an earlier spelling).
_WRITTEN_AT_FIELDS = ("replicated_at", "written_at")


def written_at(doc: Doc) -> datetime | None:
    """When the document says its copy was written (UTC when it gives no offset)."""
    for name in _WRITTEN_AT_FIELDS:
        value = doc.get(name)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


class DecodedInvoices:
    """Invoices decoded from replica documents, by the documents' content. Decoding a
    document (dates, scaled amounts, keys, relations) costs tens of microseconds on the
    request path; while the primary is down the same invoices are asked again and again, and
    their documents only change when they are written again. Keyed by the document's encoded
    bytes, so a changed document is simply another entry; bounded (cleared when full)."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._invoices: dict[bytes, Invoice] = {}
        self._max = max_entries

    def decode(self, doc: Doc) -> Invoice:
        """`invoice_from_doc`, with its errors (KeyError, ValueError, TypeError)."""
        content = orjson.dumps(doc)
        invoice = self._invoices.get(content)
        if invoice is None:
            invoice = invoice_from_doc(doc)
            if len(self._invoices) >= self._max:
                self._invoices.clear()
            self._invoices[content] = invoice
        return invoice


class InvoiceReads(ABC):
    """What both replicas share: their documents read back as invoices, each decoded once
    per content (`decoded`, one memo per replica, so one per service graph)."""

    def __init__(self) -> None:
        self.decoded = DecodedInvoices()

    @abstractmethod
    async def get(self, doc_id: str) -> Doc | None:
        """The replica's document `doc_id`, or None."""

    @abstractmethod
    async def get_by_authority_code(self, code: str) -> Doc | None:
        """The replica's document holding authority code `code`, or None."""

    async def get_invoice(self, doc_id: str) -> ReplicaHit | None:
        """The invoice `doc_id` as the replica holds it (see `Replica.get_invoice`)."""
        return self._hit(await self.get(doc_id))

    async def get_invoice_by_code(self, code: str) -> ReplicaHit | None:
        """The invoice holding authority code `code` as the replica holds it."""
        return self._hit(await self.get_by_authority_code(code))

    def _hit(self, doc: Doc | None) -> ReplicaHit | None:
        if doc is None:
            return None
        try:
            invoice = self.decoded.decode(doc)
        except (KeyError, ValueError, TypeError):  # a stale document shape is a miss
            log.warning("unreadable replica document", extra={"doc": doc.get("doc_id")})
            return None
        return ReplicaHit(invoice, written_at(doc))
