"""The real service as a process for the chaos tests: `python -m tests.chaos.service`.

Settings come from the environment exactly as `invoice-verify serve` reads them (INVOICE_HOST,
INVOICE_PORT, INVOICE_DATA_DIR, INVOICE_ES_URL, ...). With INVOICE_ES_URL the Elasticsearch
clients go through the test adapter that sends plain `application/json`, which osmem-server
needs (as bench/es_service.py does); the product is unchanged. Without it this is the
embedded default, where the tests run `invoice-verify serve` itself instead.
"""

from __future__ import annotations

import os

from aiohttp import web

from tests.indexer.store.plain_json import plain_json_client
from verify.app import create_app
from verify.http.logs import configure_logging
from verify.settings import Settings


def main() -> None:
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    factory = plain_json_client if settings.es_url else None
    web.run_app(create_app(settings, es_client_factory=factory), host=settings.host,
                port=settings.port, print=None, access_log=None, shutdown_timeout=5)


if __name__ == "__main__":
    main()
