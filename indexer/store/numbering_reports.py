"""Numbering runs: the store-side half of the missing-invoice report.

A *run* is a maximal block of consecutive numbers seen in one numbering sequence, all with
the same cancelled-or-not state. Everything the gap report says (first and last number seen,
how many, the missing ranges between runs, the cancelled ranges) follows from the runs in
number order, and there are far fewer runs than invoices (about two per hole or
cancellation), so the stores compute runs where the data is and only runs reach Python:

- SQLite (`sqlite_numbering_runs`): one statement over the `invoices_vn_series` index order
  with `LAG`/`LEAD` over the number per sequence; only the rows that start or end a run come
  back, read `page_size` at a time from a connection of the report's own (a long report
  never holds the writer connection intake uses).
- Elasticsearch (`es_numbering_runs`): a composite aggregation over (sequence, number,
  lifecycle) paged by `after_key`; each page is folded into runs as it arrives, so memory is
  one page plus the open run (works on osmem-server, which has no point-in-time).

Sequences: Vietnamese invoices number per (seller, template, series) (vn-einvoice §1.3);
Chinese invoices with a code number per (seller, invoice code) (cn-invoice §1.3). Fully
digitalised (数电) invoices have no per-seller sequence and are never part of a report.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiosqlite
from elasticsearch import AsyncElasticsearch

from indexer import cn

#: Dates outside any issue date, so an open scope needs no optional SQL.
_EARLIEST = date(1, 1, 1)
_LATEST = date(9999, 12, 31)
#: A Vietnamese seller id as stored: MST (10 digits, 13 with a branch) or a 12-digit personal id.
_VN_TAX_ID = re.compile(r"\d{10}(?:-?\d{3})?|\d{12}", re.ASCII)


@dataclass(frozen=True, slots=True)
class NumberingScope:
    """What a report covers: one seller, optionally narrowed. `issued_until` is exclusive.
    `template`/`series` narrow the Vietnamese sequences and leave out Chinese ones;
    `invoice_code` does the opposite."""

    seller_tax_id: str
    template: str | None = None
    series: str | None = None
    invoice_code: str | None = None
    issued_from: date | None = None
    issued_until: date | None = None

    @property
    def vn(self) -> bool:
        """Vietnamese sequences wanted: no invoice code given, and a tax id of that form."""
        return self.invoice_code is None and _VN_TAX_ID.fullmatch(self.seller_tax_id) is not None

    @property
    def cn(self) -> bool:
        """Chinese sequences wanted: no template or series given, and a Chinese tax id.
        The two forms never overlap (10, 12 or 13 digits against 15-20 characters, of which
        an all-digit one has 15 or more), so the other scheme is never searched in vain."""
        return (
            self.template is None
            and self.series is None
            and _VN_TAX_ID.fullmatch(self.seller_tax_id) is None
            and cn.TAX_ID_RE.fullmatch(self.seller_tax_id) is not None
        )


@dataclass(frozen=True, slots=True, order=True)
class SequenceKey:
    """One numbering sequence. vn: (template, series); cn: (invoice_code, "")."""

    scheme: str
    group: str
    subgroup: str = ""


@dataclass(frozen=True, slots=True)
class NumberRun:
    sequence: SequenceKey
    first: int
    last: int
    cancelled: bool

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class RunBuilder:
    """Folds numbers, in (sequence, number) order, into runs. Numbers are unique within a
    sequence (the key), so consecutive numbers are exactly the runs' members."""

    def __init__(self) -> None:
        self._open: NumberRun | None = None

    def add(self, sequence: SequenceKey, number: int, cancelled: bool) -> NumberRun | None:
        """Take the next number; return the run it closed, if any."""
        run = self._open
        if (
            run is not None
            and run.sequence == sequence
            and run.cancelled == cancelled
            and number == run.last + 1
        ):
            self._open = NumberRun(sequence, run.first, number, cancelled)
            return None
        self._open = NumberRun(sequence, number, number, cancelled)
        return run

    def finish(self) -> NumberRun | None:
        run, self._open = self._open, None
        return run


# --- SQLite --------------------------------------------------------------------------------

# Boundary rows only: a row starts a run when its predecessor in the sequence is not the
# number before it or differs in state; it ends one when its successor is not the number
# after it or differs. The window is ordered like the partial index, so SQLite walks the
# index without sorting. Constant SQL; every value is a parameter.
_BOUNDARIES = """
WITH scoped AS ({scoped}),
marked AS (
  SELECT g1, g2, n, c,
         LAG(n) OVER w AS pn, LAG(c) OVER w AS pc, LEAD(n) OVER w AS nn, LEAD(c) OVER w AS nc
  FROM scoped WINDOW w AS (PARTITION BY g1, g2 ORDER BY n)
)
SELECT g1, g2, n, c,
       (pn IS NULL OR pn <> n - 1 OR pc <> c) AS starts,
       (nn IS NULL OR nn <> n + 1 OR nc <> c) AS ends
FROM marked
WHERE pn IS NULL OR pn <> n - 1 OR pc <> c OR nn IS NULL OR nn <> n + 1 OR nc <> c
ORDER BY g1, g2, n
"""
_VN_SCOPED = (
    "SELECT template AS g1, series AS g2, number AS n, lifecycle = 'cancelled' AS c"
    " FROM invoices INDEXED BY invoices_vn_series"
    " WHERE scheme = 'vn' AND seller_tax_id = :seller"
    " AND (:template IS NULL OR template = :template) AND (:series IS NULL OR series = :series)"
    " AND issued_on >= :from AND issued_on < :until"
)
_CN_SCOPED = (
    "SELECT invoice_code AS g1, '' AS g2, CAST(invoice_number AS INTEGER) AS n,"
    " lifecycle = 'cancelled' AS c FROM invoices INDEXED BY invoices_cn_seller"
    " WHERE scheme = 'cn' AND invoice_code IS NOT NULL AND seller_tax_id = :seller"
    " AND (:code IS NULL OR invoice_code = :code)"
    " AND issued_on >= :from AND issued_on < :until"
)
VN_BOUNDARIES_SQL = _BOUNDARIES.format(scoped=_VN_SCOPED)
CN_BOUNDARIES_SQL = _BOUNDARIES.format(scoped=_CN_SCOPED)


def _params(scope: NumberingScope) -> dict[str, Any]:
    return {
        "seller": scope.seller_tax_id,
        "template": scope.template,
        "series": scope.series,
        "code": scope.invoice_code,
        "from": (scope.issued_from or _EARLIEST).isoformat(),
        "until": (scope.issued_until or _LATEST).isoformat(),
    }


def _runs_from_boundaries(
    scheme: str, rows: Iterable[Any], opened: dict[SequenceKey, int]
) -> list[NumberRun]:
    runs: list[NumberRun] = []
    for g1, g2, n, c, starts, ends in rows:
        sequence = SequenceKey(scheme, g1, g2)
        if starts:
            opened[sequence] = n
        if ends:
            runs.append(NumberRun(sequence, opened.pop(sequence), n, bool(c)))
    return runs


async def sqlite_numbering_runs(
    path: Path, scope: NumberingScope, *, page_size: int = 10_000
) -> AsyncGenerator[list[NumberRun], None]:
    """Pages of runs in (scheme, sequence, first) order, vn before cn. The file unreadable
    now (locked past the busy timeout, an I/O error) is the store's `SqliteUnavailable`, as
    for every other read of the store: a 503 for the report, not a 500."""
    # Imported here: indexer.store.sqlite imports this module to serve the reads.
    from indexer.store.sqlite import SqliteUnavailable

    try:
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as conn:
            await conn.execute("PRAGMA busy_timeout = 5000")
            params = _params(scope)
            for scheme, sql, wanted in (
                ("vn", VN_BOUNDARIES_SQL, scope.vn),
                ("cn", CN_BOUNDARIES_SQL, scope.cn),
            ):
                if not wanted:
                    continue
                opened: dict[SequenceKey, int] = {}
                async with conn.execute(sql, params) as cursor:
                    while rows := await cursor.fetchmany(page_size):
                        runs = _runs_from_boundaries(scheme, rows, opened)
                        if runs:
                            yield runs
    except sqlite3.DatabaseError as exc:  # a read-only query: no integrity error to pass on
        raise SqliteUnavailable(f"numbering_runs: {exc}") from exc


# --- Elasticsearch -------------------------------------------------------------------------


def _es_query(scope: NumberingScope, scheme: str) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {"term": {"scheme": scheme}},
        {"term": {"seller_tax_id": scope.seller_tax_id}},
    ]
    for field, value in (
        ("template", scope.template),
        ("series", scope.series),
        ("invoice_code", scope.invoice_code),
    ):
        if value is not None:
            filters.append({"term": {field: value}})
    if scheme == "cn":
        filters.append({"exists": {"field": "invoice_code"}})
    if scope.issued_from or scope.issued_until:
        bounds: dict[str, str] = {}
        if scope.issued_from:
            bounds["gte"] = scope.issued_from.isoformat()
        if scope.issued_until:
            bounds["lt"] = scope.issued_until.isoformat()
        filters.append({"range": {"issued_on": bounds}})
    return {"bool": {"filter": filters}}


_ES_SOURCES = {
    "vn": ("template", "series", "number"),
    "cn": ("invoice_code", None, "invoice_number"),
}


async def es_numbering_runs(
    client: AsyncElasticsearch, index: str, scope: NumberingScope, *, page_size: int = 5_000
) -> AsyncGenerator[list[NumberRun], None]:
    """Pages of runs in (scheme, sequence, first) order, vn before cn. The caller refreshes
    the index first (batch work must see every acknowledged write)."""
    for scheme, wanted in (("vn", scope.vn), ("cn", scope.cn)):
        if not wanted:
            continue
        g1, g2, number = _ES_SOURCES[scheme]
        names = [name for name in (g1, g2, number) if name] + ["lifecycle"]
        composite: dict[str, Any] = {
            "size": page_size,
            "sources": [{name: {"terms": {"field": name}}} for name in names],
        }
        builder = RunBuilder()
        while True:
            resp = await client.search(
                index=index,
                body={
                    "size": 0,
                    "query": _es_query(scope, scheme),
                    "aggs": {"runs": {"composite": composite}},
                },
            )
            agg = resp["aggregations"]["runs"]
            runs: list[NumberRun] = []
            for bucket in agg["buckets"]:
                key = bucket["key"]
                sequence = SequenceKey(scheme, str(key[g1]), str(key[g2]) if g2 else "")
                closed = builder.add(sequence, int(key[number]), key["lifecycle"] == "cancelled")
                if closed is not None:
                    runs.append(closed)
            if runs:
                yield runs
            after = agg.get("after_key")
            if not agg["buckets"] or after is None:
                break
            composite["after"] = after
        last = builder.finish()
        if last is not None:
            yield [last]
