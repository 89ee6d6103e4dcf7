"""Which backend holds the registry and the kept originals: Elasticsearch when
`INVOICE_ES_URL` is set (one registry and one set of originals shared by every service
process, under the invoice store's index prefix), else the SQLite files of the data
directory. The service (`verify.app`) and the CLI open them through here alike."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from indexer.store.elasticsearch import ClientFactory
from indexer.store.es_originals import open_elasticsearch_originals
from indexer.store.es_registry import open_elasticsearch_registry
from indexer.store.originals import OriginalStore, open_sqlite_originals
from indexer.store.registry import RegistryStore, open_sqlite_registry
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
