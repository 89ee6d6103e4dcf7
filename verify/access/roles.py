"""Roles, the principal behind a request, and which roles each route admits.

Every route is named; `ROUTE_ACCESS` maps each name to the roles allowed on it (admin is
allowed everywhere) or to `PUBLIC`. The auth middleware refuses any route missing from the
table, and a test fails when a route is added without an entry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    INTAKE = "intake"  # transmission providers: send packages, only as their own sender ids
    VERIFY = "verify"  # businesses and scanners: verification lookups
    AUDIT = "audit"  # auditors: verification, reports and gaps of their assigned tax ids
    ADMIN = "admin"  # keys, registries, outage windows, audit trail; everything else too


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: Role
    scopes: frozenset[str]  # tax ids (or provider ids for intake); empty = unscoped
    name: str = ""

    def sees_tax_id(self, tax_id: str | None) -> bool:
        """May this caller see the full data of a party with `tax_id`?"""
        if self.role is Role.ADMIN:
            return True
        return tax_id is not None and tax_id in self.scopes

    def may_send_for(self, sender: str) -> bool:
        return self.role is Role.ADMIN or sender in self.scopes


PUBLIC: frozenset[Role] = frozenset()
_V = frozenset({Role.VERIFY, Role.AUDIT})

#: route name -> roles admitted besides admin; `PUBLIC` = no key needed.
ROUTE_ACCESS: dict[str, frozenset[Role]] = {
    "health": PUBLIC,
    "ready": PUBLIC,
    "openapi": PUBLIC,
    "packages.create": frozenset({Role.INTAKE}),
    "invoices.lookup": _V,
    "verify.batch": _V,
    "verify.file": _V,  # an invoice file checked against the index, answered as a lookup
    "verify.qr": _V,
    "verify.qr_text": _V,
    "invoices.qr_png": _V,
    "invoices.original": _V,
    "invoices.lines": _V,  # parties only, as the original
    "taxpayers.get": _V,  # a seller's registry status, as lookups answer it
    "reports.missing": frozenset({Role.AUDIT}),  # and only for the key's scoped tax ids
    "reports.ledger": frozenset({Role.AUDIT}),  # likewise, for the buyer
    # gaps: verify keys see the gaps they asked about; audit keys also their sellers'
    # (verify/ops/gaps.py); outage windows are read by auditors, declared by admins.
    "gaps.list": _V,
    "gaps.get": _V,
    "outages.list": frozenset({Role.AUDIT}),
    "outages.declare": frozenset({Role.ADMIN}),
    # reconciliation: started by admins; its progress read by auditors too.
    "reconcile.start": frozenset({Role.ADMIN}),
    "reconcile.status": frozenset({Role.AUDIT}),
    # the intake journal's quarantine (docs/journal.md): operators, i.e. admins, only
    "journal.list": frozenset({Role.ADMIN}),
    "journal.retry": frozenset({Role.ADMIN}),
    "journal.drop": frozenset({Role.ADMIN}),
    "metrics": PUBLIC,
    "admin.keys.create": frozenset({Role.ADMIN}),
    "admin.keys.list": frozenset({Role.ADMIN}),
    "admin.keys.revoke": frozenset({Role.ADMIN}),
    "admin.audit": frozenset({Role.ADMIN}),
    "admin.registry.upload": frozenset({Role.ADMIN}),
    # receipts (docs/receipts.md): the public keys for anyone; checking a receipt or drawing
    # its PDF for the keys that get answers (a receipt holds only what its answer showed).
    "receipts.jwks": PUBLIC,
    "receipts.verify": _V,
    "receipts.pdf": _V,
    # watches (docs/watches.md): the keys that get answers watch what they verified; each
    # key sees only its own watches and events.
    "watches.create": _V,
    "watches.list": _V,
    "watches.delete": _V,
    "watches.events": _V,
}


def admits(route: str, principal: Principal) -> bool:
    allowed = ROUTE_ACCESS[route]
    return principal.role is Role.ADMIN or principal.role in allowed
