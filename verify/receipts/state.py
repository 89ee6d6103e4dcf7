"""The receipt keys of a running service: loaded (or made, the first time) from their store
when the app starts, and looked at again every `REFRESH_SECONDS` and whenever a receipt
names a key this process does not know, so a rotation made by any process or by the command
line reaches every process. A store that cannot be reached at the start leaves receipts
unavailable (503 `receipts_unavailable`, answers without one still work) until a later look
finds them: a process never makes keys of its own then, which would fork the key set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from verify.keys import SERVICES, SETTINGS
from verify.receipts.keyset import KeySet
from verify.receipts.keystore import KeyStore, KeyStoreUnavailable, load_or_create, open_keystore
from verify.receipts.signing import Receipts

log = logging.getLogger("verify.receipts")
RECEIPTS = web.AppKey("receipts", Receipts)
KEYSTORE: web.AppKey[KeyStore] = web.AppKey("receipt_keystore")
_LAST_LOOK: web.AppKey[list[float]] = web.AppKey("receipt_keys_looked_at")
REFRESH_SECONDS = 30.0
#: A receipt of an unknown key makes the process look at the store at most this often.
MIN_LOOK_SECONDS = 1.0
STARTUP_TIMEOUT = 10.0


def issuer(app: web.Application) -> str:
    """Named in every receipt: the service's public address when configured
    (`INVOICE_PUBLIC_URL`: its JWKS is then at `<iss>/.well-known/jwks.json`)."""
    return app[SETTINGS].web.public_url or "invoice-verify"


async def _look(app: web.Application, *, first: bool = False) -> None:
    store, receipts = app[KEYSTORE], app[RECEIPTS]
    try:
        keys = await (load_or_create(store) if first or not receipts.ready else store.load())
    except KeyStoreUnavailable as exc:
        log.error("receipt keys unavailable", extra={"where": store.where, "error": str(exc)})
        return
    if keys is not None and _changed(receipts.keys, keys):
        receipts.use(keys)
        log.info("receipt keys loaded", extra={"kid": keys.current.kid, "keys": len(keys.keys)})


def _changed(old: KeySet | None, new: KeySet) -> bool:
    return old is None or old.kids != new.kids


async def refresh_for(app: web.Application) -> None:
    """Look at the store now for a key a receipt names, unless a receipt made it look within
    `MIN_LOOK_SECONDS` (receipts of made-up key ids cost the store one read a second)."""
    now = asyncio.get_running_loop().time()
    if now - app[_LAST_LOOK][0] >= MIN_LOOK_SECONDS:
        app[_LAST_LOOK][0] = now
        await _look(app)


async def _refresh_forever(app: web.Application) -> None:
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        try:
            await _look(app)
        except Exception:  # a store answering something unexpected: try again later
            log.exception("receipt keys: looking at their store failed")


async def receipts_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the service graph (`verify.app.services_ctx`), whose Elasticsearch clients the
    key store shares."""
    services = app[SERVICES]
    async with open_keystore(app[SETTINGS], es_clients=services.clients) as store:
        app[KEYSTORE], app[RECEIPTS] = store, Receipts(None, issuer(app))
        app[_LAST_LOOK] = [-MIN_LOOK_SECONDS]
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                await _look(app, first=True)
        except TimeoutError:
            log.error(
                "receipt keys: their store did not answer at start; will retry",
                extra={"where": store.where},
            )
        task = asyncio.create_task(_refresh_forever(app), name="receipt-keys-refresh")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
