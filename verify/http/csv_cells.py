"""The one way the service writes CSV: every cell through `cell`, every writer from
`dict_writer`, so no report, ledger check or batch file can carry a spreadsheet formula.

A cell whose text begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (OWASP "CSV Injection"); such a cell gets a
leading single quote, which those programs show as text. Plain numbers (`-1500.00`) are left
alone: a spreadsheet reads them as numbers, never as a formula. The same applies to cells
reflected from the caller's own file (a ledger's cells), since the report goes to someone
else's spreadsheet. Booleans and None are written as JSON spells them in the same report's
JSON form (`true`/`false`, empty), never as Python's `True`/`None`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def cell(value: object) -> str:
    """A value as a safe CSV cell."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def safe_row(row: Mapping[str, object]) -> dict[str, str]:
    return {name: cell(value) for name, value in row.items()}


class SafeDictWriter:
    """`csv.DictWriter` whose rows pass through `cell` (the header is ours: written as is)."""

    def __init__(self, sink: _Writable, fieldnames: Collection[str]) -> None:
        self._writer = csv.DictWriter(sink, fieldnames=list(fieldnames))

    def writeheader(self) -> None:
        self._writer.writeheader()

    def writerow(self, row: Mapping[str, object]) -> None:
        self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Mapping[str, object]]) -> None:
        self._writer.writerows([safe_row(row) for row in rows])


def dict_writer(sink: _Writable, fieldnames: Collection[str]) -> SafeDictWriter:
    return SafeDictWriter(sink, fieldnames)
