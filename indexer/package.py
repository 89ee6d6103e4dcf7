"""The JSON package envelope (docs/formats.md#envelope): parse and check it whole.

Anything wrong with the envelope rejects the package as a whole (`PackageError`), before a
single invoice is looked at; per-invoice problems are the intake's business.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from indexer.text import MAX_INT_DIGITS, ascii_int, clean_text

PACKAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
MAX_ITEMS = 10_000
MAX_DEPTH = 32
#: The largest `declared_count` read (18 digits: `indexer.text.MAX_INT_DIGITS`).
MAX_COUNT = 10**MAX_INT_DIGITS - 1


class PackageError(Exception):
    """The package cannot be taken at all. `status` is the HTTP status it maps to."""

    def __init__(
        self, code: str, message: str, *, status: int = 422, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}


@dataclass(frozen=True, slots=True)
class ItemFinding:
    """A rule an item broke in the body's own format, found while reading it (an element
    the XML data standard requires): the intake reports it beside the item's other
    violations, at the severity configured for `rule`."""

    rule: str
    field: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Package:
    package_id: str
    sender: str
    declared_count: int
    invoices: list[Any]
    notices: list[Any]
    digest: str
    #: Item index (invoices first, then notices) -> what reading the body found.
    findings: Mapping[int, tuple[ItemFinding, ...]] = field(default_factory=dict)

    @property
    def item_count(self) -> int:
        return len(self.invoices) + len(self.notices)


def _list(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise PackageError("package.malformed", f"'{name}' must be a list", details={"field": name})
    return value


def _check_depth(data: object) -> None:
    """Refuse nesting no package needs (the interchange format is 4 levels deep), before
    anything recursive sees it."""
    if not isinstance(data, dict | list):
        return
    level: list[dict[str, Any] | list[Any]] = [data]  # the containers at one depth
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise PackageError("package.too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
        deeper: list[dict[str, Any] | list[Any]] = []
        for value in level:
            for child in value.values() if isinstance(value, dict) else value:
                if isinstance(child, (dict, list)):  # a tuple: faster than dict | list
                    deeper.append(child)
        level = deeper
        depth += 1


def package_from_json(
    data: object,
    *,
    max_items: int = MAX_ITEMS,
    digest: str | None = None,
    shallow: bool = False,
    counted: int | None = None,
) -> Package:
    """`digest`: the package's digest when already known (an intake-journal entry keeps the
    one computed from this very body when it was received, which also proved its text
    valid Unicode); skips the canonical encoding that computes it. `shallow`: the caller
    knows the JSON cannot nest deeper than `MAX_DEPTH` (`parse_json_package` counted its
    brackets), so the depth walk is skipped. `counted`: what `declared_count` counts when
    the body's format counts otherwise than invoices plus notices (an XML envelope's
    `SLuong` counts its `HDon` and `TBao` elements, and one 04/SS `TBao` may cancel several
    invoices, or none)."""
    if not isinstance(data, dict):
        raise PackageError("package.malformed", "a package is a JSON object")
    package_id = data.get("package_id")
    if not isinstance(package_id, str) or not PACKAGE_ID_RE.fullmatch(package_id):
        raise PackageError(
            "package.id_invalid",
            "package_id must be 1-64 letters, digits or ._:- characters",
            details={"field": "package_id"},
        )
    sender = clean_text(data.get("sender"), max_len=64)
    if sender is None:
        raise PackageError(
            "package.sender_invalid",
            "sender must be a non-empty string of "
            "at most 64 characters, without control characters",
            details={"field": "sender"},
        )
    raw_count = data.get("declared_count")
    # An int only (a JSON number, or the XML path's ASCII digits), and one that fits the
    # stores' 64-bit columns and every encoder of the answer (2**64 does not).
    declared = ascii_int(raw_count) if isinstance(raw_count, int) else None
    if declared is None:
        raise PackageError(
            "package.count_invalid",
            f"declared_count must be a whole number from 0 to {MAX_COUNT}",
            details={"field": "declared_count"},
        )
    invoices, notices = _list(data, "invoices"), _list(data, "notices")
    actual = len(invoices) + len(notices)
    if actual > max_items:
        raise PackageError(
            "package.too_many_items",
            f"a package holds at most {max_items} invoices and notices",
            status=413,
            details={"limit": max_items, "actual": actual},
        )
    if counted is None:
        counted = actual
    if declared != counted:
        raise PackageError(
            "package.count_mismatch",
            "declared_count differs from the number of invoices plus notices (in XML, SLuong "
            "from the number of HDon and TBao elements); the package is rejected whole",
            details={"declared_count": declared, "actual": counted},
        )
    if counted == 0:
        raise PackageError("package.empty", "the package holds no invoices or notices")
    if not shallow:
        _check_depth(data)
    return Package(
        package_id=package_id,
        sender=sender,
        declared_count=declared,
        invoices=invoices,
        notices=notices,
        digest=digest if digest is not None else _digest(data),
    )


def _digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    try:
        encoded = canonical.encode()
    except UnicodeEncodeError:
        raise PackageError(
            "package.invalid_text",
            "the package holds text that is not valid Unicode (a lone surrogate escape)",
        ) from None
    return hashlib.sha256(encoded).hexdigest()


def parse_json_package(
    body: bytes, *, max_items: int = MAX_ITEMS, digest: str | None = None
) -> Package:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too-long integers
        raise PackageError(
            "package.malformed_json", f"body is not valid JSON: {exc}", status=400
        ) from None
    # Nesting needs an opening bracket per level: few brackets, no deep nesting.
    shallow = body.count(b"{") + body.count(b"[") <= MAX_DEPTH
    return package_from_json(data, max_items=max_items, digest=digest, shallow=shallow)
