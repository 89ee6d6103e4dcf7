"""Elasticsearch layout of the invoice store: index names, templates, mappings, documents.

Three indices, each behind its own alias (reads and writes only ever name the alias, so a
reindex can build `<alias>-000002` and swap the alias in one `update_aliases` call):

- `<prefix>-docs`: one document per invoice, `_id` = `Invoice.doc_id`, the flat document of
  `indexer.codec` with `relations` kept as objects rather than a JSON string, so "what points
  at this invoice" is a `term` query on `relations.id`.
- `<prefix>-codes`: one document per authority code (MCCQT), `_id` = the code. Created with
  `op_type=create`, it is what makes an authority code unique across processes, and it turns
  `find_by_authority_code` / `existing_authority_codes` into realtime GETs instead of searches.
- `<prefix>-packages`: one document per committed package, `_id` = package id; the acceptance
  notice is stored but not indexed (`enabled: false`), it is only ever read back whole.

Mappings are `dynamic: strict`: a field the code does not know is refused loudly instead of
being guessed into the mapping. Keys and codes are `keyword`, money is `long` (scaled
integers, see `indexer.money`), dates are `date`, names are `text` with a `keyword` sub-field.

Layout steps (`migrate_layout`): what a release changes in an index that already exists (a
field added to the mapping, documents re-derived) is a numbered step of its alias
(`Layout.steps`), as the SQLite files have theirs. The index's mapping `_meta.layout` counts
the steps it has been through (absent: none, an index of the first release); the missing
ones run in order when a store opens (`AliasedStore.ensure_layout`), each recorded as soon
as it is done, so an interrupted migration goes on from its step. A new index is created at
the current count (the template's mapping carries it). Steps are idempotent: several
processes opening at once may run one twice, never wrongly. An index that has been through
more steps than this code knows (a later release's) is refused, as a later SQLite file is.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from elasticsearch import AsyncElasticsearch, BadRequestError

from indexer.codec import invoice_from_doc, invoice_to_doc
from indexer.model import Invoice
from indexer.store.es_steps import (
    RELATION_AMOUNT,
    RELATION_EXTERNAL,
    map_relation_amount,
    map_relation_external,
    redate_invoices,
)

#: Bumped when a mapping changes incompatibly; recorded in each template's `_meta`.
SCHEMA_VERSION = 1
#: Above the priority of Elasticsearch's built-in templates (100-ish), so ours always win.
TEMPLATE_PRIORITY = 200
#: Elasticsearch refuses `_id`s longer than this; such ids cannot be stored, so are not looked up.
MAX_ID_BYTES = 512
#: One layout step: the client and the concrete index behind the alias (`migrate_layout`).
LayoutStep: TypeAlias = Callable[[AsyncElasticsearch, str], Awaitable[None]]

_KEYWORD: dict[str, Any] = {"type": "keyword"}
_LONG: dict[str, Any] = {"type": "long"}
_DATE: dict[str, Any] = {"type": "date"}
_NAME: dict[str, Any] = {"type": "text", "fields": {"raw": {"type": "keyword",
                                                            "ignore_above": 256}}}
_SETTINGS: dict[str, Any] = {
    # One shard holds tens of millions of these small documents; more shards come with a
    # reindex through the alias, not by guessing now. One replica wherever a second node exists.
    "number_of_shards": 1,
    "auto_expand_replicas": "0-1",
}

INVOICE_PROPERTIES: dict[str, Any] = {
    "doc_id": _KEYWORD, "scheme": _KEYWORD, "seller_tax_id": _KEYWORD, "template": _KEYWORD,
    "series": _KEYWORD, "number": _LONG, "invoice_code": _KEYWORD, "invoice_number": _KEYWORD,
    "authority_code": _KEYWORD,
    # ISO 8601 in the scheme's zone (`Invoice.issued_at`); the first release kept the
    # sender's offset, which the model converts on reading.
    "issued_at": _DATE,
    "issued_ts": _LONG,
    "issued_on": {"type": "date", "format": "strict_date"},
    "currency": _KEYWORD,
    "amount_before_tax": _LONG, "tax_amount": _LONG, "total_amount": _LONG,
    "seller_name": _NAME, "buyer_tax_id": _KEYWORD, "buyer_name": _NAME,
    "type_code": _KEYWORD, "check_code": _KEYWORD, "kind": _KEYWORD, "original_id": _KEYWORD,
    "lifecycle": _KEYWORD,
    # Plain objects, not `nested`: lookups need "which invoices point at X" (relations.id),
    # never a kind-and-id pair within one relation, so the hidden nested docs would be waste.
    "relations": {"properties": {
        "kind": _KEYWORD, "id": _KEYWORD, "notice_id": _KEYWORD,
        "reason": {"type": "text", "index": False}, "at": _DATE, "external": RELATION_EXTERNAL,
        "amount": RELATION_AMOUNT,
    }},
    "package_id": _KEYWORD,
}
CODE_PROPERTIES: dict[str, Any] = {
    "authority_code": _KEYWORD, "doc_id": _KEYWORD, "package_id": _KEYWORD,
}
PACKAGE_PROPERTIES: dict[str, Any] = {
    "package_id": _KEYWORD, "sender": _KEYWORD, "digest": _KEYWORD, "received_at": _DATE,
    "notice": {"type": "object", "enabled": False},
}


@dataclass(frozen=True, slots=True)
class IndexLayout:
    """The names derived from one prefix; tests use a fresh prefix each."""

    prefix: str = "invoices"

    @property
    def invoices(self) -> str:
        return f"{self.prefix}-docs"

    @property
    def codes(self) -> str:
        return f"{self.prefix}-codes"

    @property
    def packages(self) -> str:
        return f"{self.prefix}-packages"

    def templates(self) -> dict[str, dict[str, Any]]:
        """Alias -> its mapping properties; the template is named after the alias."""
        return {self.invoices: INVOICE_PROPERTIES, self.codes: CODE_PROPERTIES,
                self.packages: PACKAGE_PROPERTIES}

    def steps(self) -> dict[str, Sequence[LayoutStep]]:
        # Step 1: `issued_on` is the day in the scheme's zone (the first release wrote the
        # day of the sender's offset). Step 2: relations may carry `external`. Step 3: and
        # `amount` (red-letter links).
        return {self.invoices: (redate_invoices, map_relation_external, map_relation_amount)}


class Layout(Protocol):
    """What `create_layout` and `migrate_layout` need: alias -> mapping properties, and
    alias -> its layout steps (the registry and the originals have layouts of their own
    beside `IndexLayout`)."""

    def templates(self) -> dict[str, dict[str, Any]]: ...

    def steps(self) -> Mapping[str, Sequence[LayoutStep]]: ...


def first_index(alias: str) -> str:
    return f"{alias}-000001"


async def create_layout(client: AsyncElasticsearch, layout: Layout) -> None:
    """Create each missing template, then each missing alias with its first index.

    An existing template is left as it is: with several processes (and, during a rolling
    deploy, several versions) starting at once, the one that changes a mapping is a reindex,
    not whoever starts last. Two processes racing to create the same index both succeed.
    """
    steps = layout.steps()
    for alias, properties in layout.templates().items():
        if not await client.indices.exists_index_template(name=alias):
            await client.indices.put_index_template(
                name=alias, index_patterns=[f"{alias}-*"], priority=TEMPLATE_PRIORITY,
                meta={"schema": SCHEMA_VERSION, "managed_by": "invoice-verify"},
                template={"settings": _SETTINGS,
                          "mappings": {"_meta": {"layout": len(steps.get(alias, ()))},
                                       "dynamic": "strict", "properties": properties}})
        if await client.indices.exists_alias(name=alias):
            continue
        try:
            await client.indices.create(index=first_index(alias),
                                        aliases={alias: {"is_write_index": True}})
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise


async def migrate_layout(client: AsyncElasticsearch, layout: Layout) -> None:
    """Run the steps each index behind an alias has not been through (module docstring),
    recording each in the index's mapping `_meta.layout` once it is done."""
    for alias, steps in layout.steps().items():
        if not steps:
            continue
        mappings = await client.indices.get_mapping(index=alias)
        for index, body in mappings.items():
            meta = body.get("mappings", {}).get("_meta") or {}
            done = int(meta.get("layout", 0))
            if done > len(steps):
                raise RuntimeError(f"index {index} has layout {done}, newer than this code "
                                   f"({len(steps)})")
            for number, step in enumerate(steps[done:], start=done + 1):
                await step(client, index)
                await client.indices.put_mapping(index=index, meta={**meta, "layout": number})


def storable_id(value: str) -> bool:
    """Whether `value` can be an `_id` at all; others are answered "absent" without a request."""
    return 0 < len(value.encode()) <= MAX_ID_BYTES


def state_version(invoice: Invoice) -> int:
    """The version of this state of the invoice: 1 + its number of relations.

    Every change intake makes to a stored invoice (replaced, adjusted, cancelled) appends
    exactly one relation and none is ever removed (`indexer.intake._link`), so this grows by
    one with each change and is the same number whenever the same state is replayed.
    """
    return 1 + len(invoice.relations)


def source_version(source: dict[str, Any]) -> int:
    """`state_version` of a stored document, without building the invoice."""
    return 1 + len(source.get("relations") or [])


def invoice_source(invoice: Invoice) -> dict[str, Any]:
    doc = invoice_to_doc(invoice)
    doc["relations"] = json.loads(doc["relations"])
    return doc


def invoice_from_source(source: dict[str, Any]) -> Invoice:
    return invoice_from_doc(source)
