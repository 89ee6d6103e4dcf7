"""The registry on Elasticsearch: one registry shared by every service process.

Two indices behind aliases, `<prefix>-taxpayers` (`_id` = tax id) and `<prefix>-providers`
(`_id` = provider id), with templates like the invoice store's (`dynamic: strict`). Each
document is the import format (`taxpayer_to_dict` / `provider_to_dict`) plus `updated_at`,
so a stored record parses back through the same checks as a file.

Imports upsert by id (`index` operations, last write wins, as SQLite's `ON CONFLICT DO
UPDATE`) in one bulk through the patient client. Each taxpayer's status is recorded over the
statuses stored for it (`indexer.registry.record_status`, read by a realtime mget just
before), so the registry keeps each taxpayer's status history; two imports of the same
taxpayer at the same moment may lose one's status change (imports are an operator's rare
act, and the last file imported is what the registry holds). "All or nothing" here means: a file is
parsed and validated whole before this store is called (`indexer.registry.parse_registry`),
so a file with a bad record writes nothing, on every backend. Once writing starts,
Elasticsearch has no transaction: an item the cluster refuses is raised as `BulkWriteError`
naming its ids, and the items that landed stay. Every item is an idempotent upsert, so
importing the same file again finishes the job.

Reads: `get_taxpayers` is a realtime mget, `get_provider` a realtime GET (fast client).
`is_empty` and `counts` are counts, which see only refreshed documents, so an import
refreshes both indices before it returns: from then on every process finds the registry
non-empty (an empty registry turns the registry checks off, so seeing it empty late would
accept unknown sellers). Imports are rare; the refresh is cheap for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch

from indexer.registry import (
    Provider,
    RegistryImport,
    Taxpayer,
    provider_from_dict,
    provider_to_dict,
    recorded_taxpayers,
    taxpayer_from_dict,
    taxpayer_to_dict,
)
from indexer.store.es_bulk import BulkOutcome, BulkWriteError, run_bulk
from indexer.store.es_mappings import LayoutStep
from indexer.store.es_support import (
    AliasedStore,
    ClientFactory,
    open_aliased_store,
    unavailable_on_failure,
)

_KEYWORD: dict[str, Any] = {"type": "keyword"}
_DAY: dict[str, Any] = {"type": "date", "format": "strict_date"}
_NAME: dict[str, Any] = {"type": "text", "fields": {"raw": {"type": "keyword",
                                                            "ignore_above": 256}}}
_UPDATED: dict[str, Any] = {"type": "date"}

#: Added to the first release's taxpayer mapping by step 1 (`_add_status_history`).
STATUS_HISTORY: dict[str, Any] = {"properties": {"status": _KEYWORD, "since": _DAY}}
TAXPAYER_PROPERTIES: dict[str, Any] = {
    "tax_id": _KEYWORD, "name": _NAME, "status": _KEYWORD, "status_since": _DAY,
    "status_history": STATUS_HISTORY,
    "einvoice_stopped": {"type": "boolean"}, "stopped_from": _DAY, "stopped_until": _DAY,
    "cash_register_code_ranges": _KEYWORD,
    "registrations": {"properties": {"template": _KEYWORD, "series": _KEYWORD,
                                     "from": _DAY, "to": _DAY}},
    "updated_at": _UPDATED,
}
PROVIDER_PROPERTIES: dict[str, Any] = {
    "provider_id": _KEYWORD, "name": _NAME, "valid_from": _DAY, "valid_to": _DAY,
    "updated_at": _UPDATED,
}


@dataclass(frozen=True, slots=True)
class RegistryLayout:
    """The registry's aliases, under the same prefix as the invoice store's."""

    prefix: str = "invoices"

    @property
    def taxpayers(self) -> str:
        return f"{self.prefix}-taxpayers"

    @property
    def providers(self) -> str:
        return f"{self.prefix}-providers"

    def templates(self) -> dict[str, dict[str, Any]]:
        return {self.taxpayers: TAXPAYER_PROPERTIES, self.providers: PROVIDER_PROPERTIES}

    def steps(self) -> dict[str, Sequence[LayoutStep]]:
        return {self.taxpayers: (_add_status_history,)}


async def _add_status_history(client: AsyncElasticsearch, index: str) -> None:
    """Taxpayers, step 1: the `status_history` field (the first release had none, and the
    mapping is strict). Adding a field is a mapping update; no document changes."""
    await client.indices.put_mapping(index=index, properties={"status_history": STATUS_HISTORY})


class ElasticsearchRegistry(AliasedStore):
    layout: RegistryLayout

    def __init__(self, fast: AsyncElasticsearch, patient: AsyncElasticsearch,
                 layout: RegistryLayout) -> None:
        super().__init__(fast, patient, layout)

    async def import_registry(self, registry: RegistryImport) -> None:
        """One bulk of upserts, then a refresh; refused items raise `BulkWriteError`."""
        await self.ensure_layout()
        now = datetime.now(UTC).isoformat()
        with unavailable_on_failure("import_registry"):
            sources = await self.mget_sources(
                self.layout.taxpayers, (t.tax_id for t in registry.taxpayers), self.patient)
        stored = {tax_id: taxpayer_from_dict(source) for tax_id, source in sources.items()}
        actions: list[dict[str, Any]] = [
            {"_op_type": "index", "_index": self.layout.taxpayers, "_id": t.tax_id,
             "_source": {**taxpayer_to_dict(t), "updated_at": now}}
            for t in recorded_taxpayers(stored, registry.taxpayers).values()]
        actions += [
            {"_op_type": "index", "_index": self.layout.providers, "_id": p.provider_id,
             "_source": {**provider_to_dict(p), "updated_at": now}}
            for p in registry.providers]
        outcome = BulkOutcome()
        with unavailable_on_failure("import_registry"):
            await run_bulk(self.patient, actions, outcome)
            await self._refresh()
        if outcome.failed:
            raise BulkWriteError(outcome.failed)

    async def _refresh(self) -> None:
        for alias in self.layout.templates():
            await self.patient.indices.refresh(index=alias)

    async def is_empty(self) -> bool:
        await self.ensure_layout(self.fast)
        with unavailable_on_failure("registry is_empty"):
            for alias in self.layout.templates():
                if int((await self.fast.count(index=alias))["count"]):
                    return False
        return True

    async def get_taxpayers(self, tax_ids: Iterable[str]) -> dict[str, Taxpayer]:
        await self.ensure_layout(self.fast)
        with unavailable_on_failure("get_taxpayers"):
            sources = await self.mget_sources(self.layout.taxpayers, tax_ids)
        taxpayers = (taxpayer_from_dict(source) for source in sources.values())
        return {t.tax_id: t for t in taxpayers}

    async def get_provider(self, provider_id: str) -> Provider | None:
        await self.ensure_layout(self.fast)
        with unavailable_on_failure("get_provider"):
            source = await self.get_source(self.layout.providers, provider_id)
        return provider_from_dict(source) if source is not None else None

    async def counts(self) -> dict[str, int]:
        """An operator's statistic: refreshes first, so a crashed import's items count too."""
        await self.ensure_layout()
        with unavailable_on_failure("registry counts"):
            await self._refresh()
            taxpayers = await self.patient.count(index=self.layout.taxpayers)
            providers = await self.patient.count(index=self.layout.providers)
        return {"taxpayers": int(taxpayers["count"]), "providers": int(providers["count"])}


@asynccontextmanager
async def open_elasticsearch_registry(
        url: str, *, index_prefix: str = "invoices", client_factory: ClientFactory | None = None,
        startup_timeout: float = 10.0) -> AsyncIterator[ElasticsearchRegistry]:
    """Like `open_elasticsearch_store`: opens even if the cluster does not answer yet."""
    layout = RegistryLayout(index_prefix)
    async with open_aliased_store(
            url, lambda fast, patient: ElasticsearchRegistry(fast, patient, layout),
            client_factory=client_factory, startup_timeout=startup_timeout) as registry:
        yield registry
