"""Stores as the first release (git 25deeb5) left them, for the migration tests: a SQLite
store file at version 4 and Elasticsearch indices of its templates (`es_release_1.json`),
holding invoices written the way that release wrote them.

That release stored `issued_at` with the sender's offset and `issued_on` as the date of that
offset (`indexer/codec.py`: `inv.issued_at.date()`), so an invoice sent as
`2025-12-31T17:30:00Z` was filed under 2025-12-31. `release_doc` reproduces that document.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch

from indexer.codec import DOC_FIELDS, invoice_to_doc
from indexer.model import Invoice
from indexer.store.sqlite import _LAYOUT

RELEASE_SQLITE_VERSION = 4
_TEMPLATES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "es_release_1.json").read_text(encoding="utf-8")
)
_INSERT = (
    f"INSERT INTO invoices ({', '.join(DOC_FIELDS)}) VALUES"
    f" ({', '.join(':' + f for f in DOC_FIELDS)})"
)


def release_doc(invoice: Invoice, sent: str) -> dict[str, Any]:
    """The flat document the release wrote for `invoice` sent with `issued_at` = `sent`."""
    as_sent = datetime.fromisoformat(sent)
    assert as_sent == invoice.issued_at  # the same instant
    return {
        **invoice_to_doc(invoice),
        "issued_at": as_sent.isoformat(),
        "issued_on": as_sent.date().isoformat(),
    }


def release_sqlite_file(path: Path, docs: list[dict[str, Any]]) -> None:
    """A store file of the release (its steps 1-4, `user_version` 4) holding `docs`, each
    under a package record of its own `package_id`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for step in _LAYOUT[:RELEASE_SQLITE_VERSION]:
            assert isinstance(step, str)
            conn.executescript(step)
        for package_id in sorted({d["package_id"] for d in docs}):
            conn.execute(
                "INSERT INTO packages VALUES (?, 'SENDER', 'abc',"
                " '2026-01-02T03:04:05+00:00', '{\"result\": \"accepted\"}')",
                (package_id,),
            )
        conn.executemany(_INSERT, docs)
        conn.execute(f"PRAGMA user_version = {RELEASE_SQLITE_VERSION}")
    conn.close()


async def release_es_indices(client: AsyncElasticsearch, prefix: str) -> None:
    """Every template, index and alias the release created under `prefix`."""
    for suffix, mappings in _TEMPLATES["mappings"].items():
        alias = f"{prefix}-{suffix}"
        await client.indices.put_index_template(
            name=alias,
            index_patterns=[f"{alias}-*"],
            priority=_TEMPLATES["priority"],
            meta=_TEMPLATES["meta"],
            template={"settings": _TEMPLATES["settings"], "mappings": mappings},
        )
        await client.indices.create(
            index=f"{alias}-000001", aliases={alias: {"is_write_index": True}}
        )


async def release_es_invoices(
    client: AsyncElasticsearch, prefix: str, docs: list[dict[str, Any]], *, versions: int = 1
) -> None:
    """`docs` in the release's invoice index, each at `_version` `versions` (created, then
    changed with the release's version guard, `version_type=external`); their authority
    codes in its codes index."""
    for doc in docs:
        source = {**doc, "relations": json.loads(doc["relations"])}
        await client.create(index=f"{prefix}-docs", id=doc["doc_id"], document=source)
        for version in range(2, versions + 1):
            await client.index(
                index=f"{prefix}-docs",
                id=doc["doc_id"],
                document=source,
                version=version,
                version_type="external",
            )
        if doc["authority_code"]:
            await client.create(
                index=f"{prefix}-codes",
                id=doc["authority_code"],
                document={
                    "authority_code": doc["authority_code"],
                    "doc_id": doc["doc_id"],
                    "package_id": doc["package_id"],
                },
            )
    await client.indices.refresh(index=f"{prefix}-docs")
