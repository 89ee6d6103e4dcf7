"""The invoice model shared by every store, the intake and the verification answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from indexer.keys import InvoiceKey

#: The zone an invoice's issue day is counted in, per scheme: the day printed on it
#: (vn-einvoice §1.4: "store a date in Asia/Ho_Chi_Minh", UTC+7 all year; cn-invoice: China
#: Standard Time, UTC+8, no daylight saving).
SCHEME_TZ = {"vn": timezone(timedelta(hours=7)), "cn": timezone(timedelta(hours=8))}


def local_issue_date(scheme: str, issued_at: datetime) -> date:
    """The issue date of an invoice of `scheme` issued at `issued_at`: its day in the
    scheme's zone, whatever offset the sender wrote (`2025-12-31T17:30:00Z` is 2026-01-01 in
    Vietnam). The one place this day is derived: the stored `issued_on`, matching, month and
    year scans, reports, the recheck and the stores' migrations all use it."""
    if issued_at.tzinfo is None:  # never from intake (refused); a calendar day as written
        return issued_at.date()
    return issued_at.astimezone(SCHEME_TZ[scheme]).date()


class Kind(enum.StrEnum):
    ORIGINAL = "original"
    REPLACEMENT = "replacement"
    ADJUSTMENT = "adjustment"
    #: cn: a red-letter invoice (红字发票) reversing all or part of its blue invoice
    #: (`original`), issued against a 红字信息表 / 红字确认单 (cn-invoice §4.4).
    RED_LETTER = "red_letter"


class Lifecycle(enum.StrEnum):
    """Where an invoice stands. `issued` is in force; the others point at what changed it."""

    ISSUED = "issued"
    CANCELLED = "cancelled"
    REPLACED = "replaced"
    ADJUSTED = "adjusted"
    #: cn: red-letter invoices reverse part of it (部分红冲); what is left is in force.
    PARTIALLY_REVERSED = "partially_reversed"
    #: cn: red-letter invoices reverse all of it (已全额红冲): no longer in force.
    REVERSED = "reversed"


class RelationKind(enum.StrEnum):
    REPLACES = "replaces"
    REPLACED_BY = "replaced_by"
    ADJUSTS = "adjusts"
    ADJUSTED_BY = "adjusted_by"
    CANCELLED_BY = "cancelled_by"
    REVERSES = "reverses"
    REVERSED_BY = "reversed_by"


@dataclass(frozen=True, slots=True)
class Relation:
    """A link to another invoice (`key`) or, for a cancellation, to the notice that did it.
    `external`: the other invoice is not one this index holds (a correction's original of
    LHDCLQuan 2-4, vn-einvoice §5.6), so the link is one way and no rule looks it up.
    A red-letter link (`reverses` / `reversed_by`) carries the 红字信息表 / 确认单 number in
    `notice_id` and the red invoice's total, as a positive amount, in `amount`: what the blue
    invoice has been reversed by is the sum of its `reversed_by` amounts."""

    kind: RelationKind
    key: InvoiceKey | None = None
    notice_id: str | None = None
    reason: str | None = None
    at: datetime | None = None
    external: bool = False
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Amounts:
    before_tax: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class Invoice:
    key: InvoiceKey
    #: Always timezone-aware, and held in the scheme's zone (`SCHEME_TZ`): the same instant
    #: as sent, shown as printed, so `issued_at.date()` is the issue date wherever it is read.
    issued_at: datetime
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

    def __post_init__(self) -> None:
        zone = SCHEME_TZ[self.key.scheme]
        at = self.issued_at
        if at.tzinfo is not None and at.utcoffset() != zone.utcoffset(None):
            object.__setattr__(self, "issued_at", at.astimezone(zone))

    @property
    def issued_on(self) -> date:
        """The issue date, in the scheme's zone (`local_issue_date`)."""
        return local_issue_date(self.scheme, self.issued_at)

    @property
    def doc_id(self) -> str:
        return self.key.doc_id

    @property
    def scheme(self) -> str:
        return self.key.scheme
