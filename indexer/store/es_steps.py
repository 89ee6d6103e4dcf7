"""The data steps of the Elasticsearch layout (`es_mappings.migrate_layout` runs them): what
a release changes in documents already stored, done in place on the concrete index.

Writes keep each document's `_version`. The invoice store's version guard
(`elasticsearch.py`, "Version guard") writes a changed invoice with
`version_type=external`, which the cluster accepts only above the stored `_version`; a step
that rewrote a document with an internal version would bump it, and the next real change
would be refused as stale. A step therefore writes `version=<the version it read>` with
`version_type=external_gte`: accepted at the same version, refused (409) if the document
changed since it was read, in which case the page is read again. `update_by_query` would
bump every version, and a `_reindex` into a new index behind the alias would lose what
intake writes during the copy; osmem-server, the stand-in the tests run on, runs neither
with a script. So a step pages through the index with `search_after` (sorted on the unique
`doc_id`) and writes in bulk the documents it changes; it is idempotent, so a step that
was interrupted runs again from the start and writes only what is left.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch

from indexer.model import local_issue_date
from indexer.store.es_bulk import BulkOutcome, BulkWriteError, run_bulk

#: Documents read per page.
PAGE = 1000
#: Times one page is read again after a concurrent change before the step gives up.
ROUNDS = 5


def _redated(hit: dict[str, Any]) -> dict[str, Any] | None:
    source: dict[str, Any] = hit["_source"]
    day = local_issue_date(
        source["scheme"], datetime.fromisoformat(source["issued_at"])
    ).isoformat()
    if source.get("issued_on") == day:
        return None
    return {
        "_op_type": "index",
        "_index": hit["_index"],
        "_id": hit["_id"],
        "version": hit["_version"],
        "version_type": "external_gte",
        "_source": {**source, "issued_on": day},
    }


async def redate_invoices(client: AsyncElasticsearch, index: str) -> None:
    """Invoices, step 1: `issued_on` is the issue date in the scheme's zone
    (`indexer.model.local_issue_date`); the first release wrote the date of the sender's
    offset. Only documents whose day differs are written."""
    await client.indices.refresh(index=index)
    after: list[Any] | None = None
    rounds = ROUNDS
    while True:
        body: dict[str, Any] = {
            "query": {"match_all": {}},
            "sort": [{"doc_id": "asc"}],
            "size": PAGE,
            "version": True,
        }
        if after is not None:
            body["search_after"] = after
        hits: list[dict[str, Any]] = (await client.search(index=index, body=body))["hits"]["hits"]
        if not hits:
            return
        outcome = BulkOutcome()
        await run_bulk(client, [a for hit in hits if (a := _redated(hit)) is not None], outcome)
        if outcome.failed:
            rounds -= 1
            if rounds == 0 or any(f.status != 409 for f in outcome.failed):
                raise BulkWriteError(outcome.failed)
            await client.indices.refresh(index=index)  # changed meanwhile: read it again
            continue
        rounds = ROUNDS
        after = hits[-1]["sort"]


#: `relations.external` (`indexer.model.Relation.external`): written only when true.
RELATION_EXTERNAL: dict[str, Any] = {"type": "boolean"}


async def map_relation_external(client: AsyncElasticsearch, index: str) -> None:
    """Invoices, step 2: the mapping takes `relations.external`. No document changes: a
    relation stored before it is read as external by its `external:` reason
    (`indexer.codec`)."""
    await client.indices.put_mapping(
        index=index, properties={"relations": {"properties": {"external": RELATION_EXTERNAL}}}
    )


#: `relations.amount` (`indexer.model.Relation.amount`): a red-letter link's red total, as
#: the decimal text `indexer.codec` writes; written only on those links.
RELATION_AMOUNT: dict[str, Any] = {"type": "keyword", "index": False}


async def map_relation_amount(client: AsyncElasticsearch, index: str) -> None:
    """Invoices, step 3: the mapping takes `relations.amount` (red-letter invoices). No
    document changes: no relation stored before carries one."""
    await client.indices.put_mapping(
        index=index, properties={"relations": {"properties": {"amount": RELATION_AMOUNT}}}
    )
