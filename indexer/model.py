"""The invoice model shared by every store, the intake and the verification answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from indexer.keys import InvoiceKey


class Kind(enum.StrEnum):
    ORIGINAL = "original"
    REPLACEMENT = "replacement"
    ADJUSTMENT = "adjustment"


class Lifecycle(enum.StrEnum):
    """Where an invoice stands. `issued` is in force; the others point at what changed it."""

    ISSUED = "issued"
    CANCELLED = "cancelled"
    REPLACED = "replaced"
    ADJUSTED = "adjusted"


class RelationKind(enum.StrEnum):
    REPLACES = "replaces"
    REPLACED_BY = "replaced_by"
    ADJUSTS = "adjusts"
    ADJUSTED_BY = "adjusted_by"
    CANCELLED_BY = "cancelled_by"


@dataclass(frozen=True, slots=True)
class Relation:
    """A link to another invoice (`key`) or, for a cancellation, to the notice that did it."""

    kind: RelationKind
    key: InvoiceKey | None = None
    notice_id: str | None = None
    reason: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Amounts:
    before_tax: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class Invoice:
    key: InvoiceKey
    issued_at: datetime  # always timezone-aware
    currency: str
    amounts: Amounts
    package_id: str
    kind: Kind = Kind.ORIGINAL
    original: InvoiceKey | None = None
    seller_tax_id: str | None = None
    seller_name: str | None = None
    buyer_tax_id: str | None = None
    buyer_name: str | None = None
    authority_code: str | None = None  # vn: MCCQT
    type_code: str | None = None  # cn: type code (§3.2)
    check_code: str | None = None  # cn: 20-digit 校验码
    lifecycle: Lifecycle = Lifecycle.ISSUED
    relations: tuple[Relation, ...] = field(default=())

    @property
    def doc_id(self) -> str:
        return self.key.doc_id

    @property
    def scheme(self) -> str:
        return self.key.scheme
