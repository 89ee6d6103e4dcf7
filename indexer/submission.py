"""A package as submitted: the request body and its format, parsed the one way every path
parses it (`POST /packages`, `invoice-verify ingest`, and the reconciler draining the intake
journal, which keeps the body as received and parses it again when it applies it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from indexer.package import Package, parse_json_package
from indexer.rules import RuleConfig, Violation
from indexer.signature import TrustAnchors, seller_signature_violations
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


def read_submission(body: bytes, fmt: BodyFormat, *, max_items: int,
                    digest: str | None = None) -> Submission:
    """Raises `PackageError` (a 4xx) for a body that is not a package. `digest`: the
    digest this body is known to have (a journal entry's, computed when it was received),
    so a JSON body need not be encoded again to compute it."""
    if fmt is BodyFormat.XML:
        parsed = parse_xml_package(body, max_items=max_items)
        return Submission(parsed.package, body, fmt, parsed.originals)
    return Submission(parse_json_package(body, max_items=max_items, digest=digest), body, fmt)


def signature_violations(submission: Submission, anchors: TrustAnchors, rules: RuleConfig,
                         now: datetime | None = None) -> dict[int, list[Violation]]:
    """Seller XML-DSig violations per invoice index (none without trust anchors or for
    JSON). CPU-bound: callers on an event loop run it in an executor."""
    if not anchors.enabled or not submission.originals:
        return {}
    return seller_signature_violations(submission.package, submission.originals, anchors,
                                       rules, now)
