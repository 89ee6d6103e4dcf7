"""Which backend holds what: with `INVOICE_ES_URL` the invoices, the registry and the kept
originals live in Elasticsearch (shared by every service process, under one index prefix),
else in the SQLite files of the data directory; with `INVOICE_REDIS_URL` the replica is
Redis, else process memory. `verify.services.open_services` opens them through here for the
service and every CLI command alike, so a CLI intake lands where the service reads."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

from fallback.replica import MemoryReplica, Replica, open_redis_replica
from indexer.store import InvoiceStore
from indexer.store.elasticsearch import ClientFactory, open_elasticsearch_store
from indexer.store.es_originals import open_elasticsearch_originals
from indexer.store.es_registry import open_elasticsearch_registry
from indexer.store.originals import OriginalStore, open_sqlite_originals
from indexer.store.registry import RegistryStore, open_sqlite_registry
from indexer.store.sqlite import open_sqlite_store
from verify.settings import Settings


def open_registry(settings: Settings, es_client_factory: ClientFactory | None = None,
                  ) -> AbstractAsyncContextManager[RegistryStore]:
    if settings.es_url:
        return open_elasticsearch_registry(settings.es_url,
                                           index_prefix=settings.es_index_prefix,
                                           client_factory=es_client_factory)
    return open_sqlite_registry(settings.registry_path)


def open_originals(settings: Settings, es_client_factory: ClientFactory | None = None,
                   ) -> AbstractAsyncContextManager[OriginalStore]:
    if settings.es_url:
        return open_elasticsearch_originals(settings.es_url,
                                            index_prefix=settings.es_index_prefix,
                                            client_factory=es_client_factory)
    return open_sqlite_originals(settings.originals_path)


def open_invoice_store(settings: Settings, es_client_factory: ClientFactory | None = None,
                       ) -> AbstractAsyncContextManager[InvoiceStore]:
    if settings.es_url:
        return open_elasticsearch_store(settings.es_url, index_prefix=settings.es_index_prefix,
                                        client_factory=es_client_factory)
    return open_sqlite_store(settings.sqlite_path)


def open_replica(settings: Settings) -> AbstractAsyncContextManager[Replica]:
    if settings.redis_url:
        return open_redis_replica(settings.redis_url, namespace=settings.redis_namespace)
    return nullcontext(MemoryReplica())
