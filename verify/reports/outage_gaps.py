"""The outage-gap section of the missing-invoice report.

Numbering gaps say which numbers the index never saw; this section says which invoices of the
same scope someone asked about while we could not answer authoritatively (the gap ledger,
`fallback.gaps`), with the outage window each was recorded under (`fallback.outages`):

- `open` gaps: not re-checked yet, so still unknown;
- gaps resolved `missing`: re-checked after the outage and still not in the index.
Gaps resolved `found` are left out: the invoice arrived, nothing is missing.

In scope: the gap's seller is the report's seller (a gap knows its seller only when it was
asked by a Vietnamese key: one asked by authority code or by a Chinese code and number names
no seller and is in no seller's report), its key fits the template, series or code asked for,
and its day lies in the period. A gap's day is the issue date the caller gave, else the day
it was first asked, in the invoice's time zone. The ledger is read a page at a time through
its public listing (the seller's gaps, oldest first); the rest is filtered here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fallback.gaps import Gap, GapLedger, GapStatus, Visibility
from fallback.outages import SCHEME_TZ, OutageLog, OutageWindow
from indexer.store.numbering_reports import NumberingScope

#: Gaps read from the ledger per page.
PAGE = 1000
#: A resolved gap is reported only with this outcome (the reconciler's `resolve`).
RESOLVED_MISSING = "missing"
#: The gap's fields a report shows (who asked, and their callbacks, are not an auditor's).
GAP_FIELDS = ("id", "lookup_key", "scheme", "key", "seller_tax_id", "issued_on", "reason",
              "status", "resolution", "first_seen", "last_seen", "resolved_at", "count",
              "outage_id")
CSV_COLUMNS = ("number", "gap_id", "issued_on", "reason", "status", "resolution",
               "first_seen", "last_seen", "asked", "outage_id", "outage_system",
               "outage_kind", "outage_start", "outage_end")


@dataclass(frozen=True, slots=True)
class OutageGap:
    gap: Gap
    outage: OutageWindow | None  # None: recorded outside any window (intake lag), or gone

    @property
    def is_open(self) -> bool:
        return self.gap.status is GapStatus.OPEN

    def as_dict(self) -> dict[str, Any]:
        shown = self.gap.as_dict(requesters=())
        return {**{name: shown[name] for name in GAP_FIELDS},
                "outage": self.outage.as_dict() if self.outage else None}

    def csv_fields(self) -> dict[str, Any]:
        """The report's CSV columns of this gap (`CSV_COLUMNS`), besides the key's."""
        shown = self.gap.as_dict(requesters=())
        key = self.gap.key
        window = self.outage.as_dict() if self.outage else {}
        return {"number": key.get("number", key.get("invoice_number")), "gap_id": self.gap.id,
                "issued_on": shown["issued_on"], "reason": shown["reason"],
                "status": shown["status"], "resolution": shown["resolution"],
                "first_seen": shown["first_seen"], "last_seen": shown["last_seen"],
                "asked": self.gap.count, "outage_id": self.gap.outage_id,
                "outage_system": window.get("system"), "outage_kind": window.get("kind"),
                "outage_start": window.get("start"), "outage_end": window.get("end")}

    def key_fields(self) -> dict[str, str | None]:
        key = self.gap.key
        return {"scheme": self.gap.scheme, "seller_tax_id": self.gap.seller_tax_id,
                "template": key.get("template"), "series": key.get("series"),
                "invoice_code": key.get("invoice_code")}


def gap_day(gap: Gap) -> date:
    """The issue date the caller gave, else the local day the gap was first asked about."""
    if gap.issued_on is not None:
        return gap.issued_on
    asked = datetime.fromtimestamp(gap.first_seen, UTC)
    return asked.astimezone(SCHEME_TZ.get(gap.scheme, UTC)).date()


def reported(gap: Gap) -> bool:
    """Open, or resolved as missing."""
    return gap.status is GapStatus.OPEN or gap.resolution == RESOLVED_MISSING


def in_scope(gap: Gap, scope: NumberingScope) -> bool:
    if gap.seller_tax_id != scope.seller_tax_id:
        return False
    if not (scope.vn if gap.scheme == "vn" else scope.cn):
        return False
    for name, wanted in (("template", scope.template), ("series", scope.series),
                         ("invoice_code", scope.invoice_code)):
        if wanted is not None and gap.key.get(name) != wanted:
            return False
    day = gap_day(gap)
    return ((scope.issued_from is None or day >= scope.issued_from)
            and (scope.issued_until is None or day < scope.issued_until))


async def outage_gaps(ledger: GapLedger, outages: OutageLog,
                      scope: NumberingScope) -> AsyncIterator[OutageGap]:
    """The scope's open and resolved-missing gaps, oldest first, each with its window."""
    seller_only = Visibility(key_id="", tax_ids=frozenset({scope.seller_tax_id}))
    windows: dict[int, OutageWindow | None] = {}
    after: str | None = None
    while True:
        page = await ledger.list(visible_to=seller_only, after=after, limit=PAGE)
        for gap in page:
            if not (reported(gap) and in_scope(gap, scope)):
                continue
            window = None
            if gap.outage_id is not None:
                if gap.outage_id not in windows:
                    windows[gap.outage_id] = await outages.get(gap.outage_id)
                window = windows[gap.outage_id]
            yield OutageGap(gap, window)
        if len(page) < PAGE:
            return
        after = page[-1].id
