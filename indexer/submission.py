"""A package as submitted: the request body and its format, parsed the one way every path
parses it (`POST /packages`, `invoice-verify ingest`, and the reconciler draining the intake
journal, which keeps the body as received and parses it again when it applies it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from indexer.package import Package, parse_json_package
from indexer.rules import RuleConfig, Violation
from indexer.signature import (
    TrustAnchors,
    check_package_signature,
    seller_signature_violations,
)
from indexer.vn_xml import parse_xml_package


class BodyFormat(enum.StrEnum):
    JSON = "json"
    XML = "xml"


@dataclass(frozen=True, slots=True)
class Submission:
    package: Package
    body: bytes
    format: BodyFormat
    #: invoice index -> its original XML (VN XML packages only)
    originals: dict[int, bytes] = field(default_factory=dict)
    #: the TDiep of a cash-register package (message 206), whose CKSNNT signs all of it
    cash_register_package: bytes | None = None


def read_submission(
    body: bytes, fmt: BodyFormat, *, max_items: int, digest: str | None = None
) -> Submission:
    """Raises `PackageError` (a 4xx) for a body that is not a package. `digest`: the
    digest this body is known to have (a journal entry's, computed when it was received),
    so a JSON body need not be encoded again to compute it."""
    if fmt is BodyFormat.XML:
        parsed = parse_xml_package(body, max_items=max_items)
        return Submission(parsed.package, body, fmt, parsed.originals, parsed.cash_register_package)
    return Submission(parse_json_package(body, max_items=max_items, digest=digest), body, fmt)


def signature_violations(
    submission: Submission, anchors: TrustAnchors, rules: RuleConfig, now: datetime | None = None
) -> dict[int, list[Violation]]:
    """Signature violations per invoice index, none without trust anchors: each Vietnamese
    invoice's seller XML-DSig (`vn.signature.json_unsigned` for every one sent as JSON, which
    carries none) and, for a cash-register package, its package signature `CKSNNT` (§6.3),
    reported on each invoice of the taxpayer it must name. CPU-bound: callers on an event
    loop run it in an executor."""
    if not anchors.enabled:
        return {}
    found = seller_signature_violations(
        submission.package, submission.originals, anchors, rules, now
    )
    if submission.cash_register_package is not None:
        for index, violations in _package_signature_violations(
            submission.package, submission.cash_register_package, anchors, rules, now
        ).items():
            found.setdefault(index, []).extend(violations)
    return found


def _package_signature_violations(
    package: Package,
    tdiep: bytes,
    anchors: TrustAnchors,
    rules: RuleConfig,
    now: datetime | None,
) -> dict[int, list[Violation]]:
    """The CKSNNT check once per seller of the package's invoices (one, normally), its
    violations given to each of that seller's invoices."""
    by_seller: dict[str | None, list[Violation]] = {}
    found: dict[int, list[Violation]] = {}
    for index, raw in enumerate(package.invoices):
        seller = raw.get("seller_tax_id") if isinstance(raw, dict) else None
        tax_id = seller if isinstance(seller, str) else None
        if tax_id not in by_seller:
            by_seller[tax_id] = check_package_signature(
                tdiep, taxpayer_tax_id=tax_id, anchors=anchors, cfg=rules, now=now
            )
        if by_seller[tax_id]:
            found[index] = list(by_seller[tax_id])
    return found
