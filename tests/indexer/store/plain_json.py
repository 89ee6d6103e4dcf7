"""A transport node for osmem-server, which answers only plain `application/json`.

The Elasticsearch 8 client always sends `application/vnd.elasticsearch+json;
compatible-with=8` (an 8.x server needs it). osmem-server, the in-memory stand-in CI runs the
contract suite against, refuses that media type, so the test client rewrites it back to the
plain type on the way out. Test code only: the product talks to real Elasticsearch as is.
"""

from __future__ import annotations

import re

from elastic_transport import AiohttpHttpNode, HttpHeaders
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import AsyncElasticsearch

from indexer.store.elasticsearch import ClientOptions

_COMPAT = re.compile(r"application/vnd\.elasticsearch\+([\w-]+); ?compatible-with=\d+")


class PlainJsonNode(AiohttpHttpNode):
    async def perform_request(  # type: ignore[override]
            self, method: str, target: str, body: bytes | None = None,
            headers: HttpHeaders | None = None,
            request_timeout: DefaultType | float | None = DEFAULT) -> object:
        if headers is not None:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                if name in headers:
                    headers[name] = _COMPAT.sub(r"application/\1", headers[name])
        return await super().perform_request(method, target, body, headers, request_timeout)


def plain_json_client(url: str, options: ClientOptions) -> AsyncElasticsearch:
    """A `ClientFactory` for osmem-server: the product's options, the plain media type."""
    return AsyncElasticsearch(url, node_class=PlainJsonNode,
                              request_timeout=options.request_timeout,
                              max_retries=options.max_retries,
                              retry_on_timeout=options.retry_on_timeout)
