"""The seller's taxpayer status as a lookup answers it (docs/vn-rules.md §4): the status in
force on the issue date and today, from the registry (`indexer.registry.Taxpayer.status_on`),
and a warning when a `valid` invoice's seller is closed, suspended or not at its registered
address on either day. A buyer claiming input VAT checks exactly this on the GDT portal."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from indexer.registry import Taxpayer
from indexer.store.registry import RegistryStore

log = logging.getLogger("fallback.lookup")

#: Statuses a buyer must be warned of, with the warning's code (vn-rules §4).
WARNED: dict[str, str] = {
    "01": "seller_closed",  # stopped, MST closed
    "03": "seller_closed",  # stopped, closure pending
    "05": "seller_suspended",  # temporarily suspended
    "06": "seller_not_at_registered_address",
}


async def read_sellers(
    registry: RegistryStore | None, tax_ids: set[str]
) -> dict[str, Taxpayer] | None:
    """The registry's records of `tax_ids`, in one read; None when there is no registry or
    it cannot be read (logged): the answers then stand without the seller's status, as a
    lookup's do, never failing for it."""
    if not tax_ids:
        return {}
    if registry is None:
        return None
    try:
        return await registry.get_taxpayers(tax_ids)
    except Exception:
        log.exception("could not read the sellers' status")
        return None


def seller_status(taxpayer: Taxpayer | None, issued_on: date, today: date) -> dict[str, Any]:
    """`known` false when the registry does not hold the seller (statuses then null)."""
    if taxpayer is None:
        return {"known": False, "on_issue_date": None, "today": None}
    return {
        "known": True,
        "on_issue_date": taxpayer.status_on(issued_on),
        "today": taxpayer.status_on(today),
    }


def seller_warnings(by_day: dict[str, str | None]) -> list[dict[str, str]]:
    """One warning per day whose status is warned of: code, the day's name (`when`, e.g.
    `on_issue_date` or `today`) and the status."""
    out = []
    for when, status in by_day.items():
        code = WARNED.get(status or "")
        if code is not None and status is not None:
            out.append({"code": code, "when": when, "status": status})
    return out


def with_seller_status(
    answer: dict[str, Any], taxpayer: Taxpayer | None, issued_on: date, today: date
) -> dict[str, Any]:
    """`answer` with its invoice's `seller_status`, and `warnings` when it is `valid` and the
    seller was or is at a warned status."""
    status = seller_status(taxpayer, issued_on, today)
    out = {**answer, "invoice": {**answer["invoice"], "seller_status": status}}
    days = {"on_issue_date": status["on_issue_date"], "today": status["today"]}
    warnings = seller_warnings(days) if answer["status"] == "valid" else []
    if warnings:
        out["warnings"] = warnings
    return out


def taxpayer_answer(taxpayer: Taxpayer, today: date, on: date | None) -> dict[str, Any]:
    """`GET /taxpayers/{tax_id}`: the registry's record of one taxpayer, its statuses with
    the day each took effect, the status today (and on `on` when asked) and the warnings a
    buyer gets from a lookup of its invoices."""
    days = {"today": taxpayer.status_on(today)}
    if on is not None:
        days["on"] = taxpayer.status_on(on)
    return {
        "tax_id": taxpayer.tax_id,
        "name": taxpayer.name,
        "status": days["today"],
        "on": None if on is None else on.isoformat(),
        "status_on": days.get("on"),
        "statuses": [
            {"status": c.status, "since": c.since.isoformat() if c.since else None}
            for c in taxpayer.statuses
        ],
        "einvoice_stopped": taxpayer.stopped_on(today),
        "warnings": seller_warnings(days),
    }
