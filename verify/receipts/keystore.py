"""Where the receipt key set lives, shared by every process that signs:

- `FileKeyStore`: a JSON file, owner-only (0600): `receipt-keys.json` in the data directory
  (one process, or workers sharing the directory), or the file `INVOICE_RECEIPT_KEY_FILE`
  names (a secret mounted into every process);
- `EsKeyStore`: one document in Elasticsearch, under the store's prefix
  (`<prefix>-receipt-keys`), when `INVOICE_ES_URL` is set: the distributed deployment;
- `RedisKeyStore`: one Redis key (`<namespace>:receipt-keys`) when only `INVOICE_REDIS_URL`
  is set.

Each offers `load` (None: there is no key set yet) and `change(step)`: `step` gets the
stored set (or None) and returns the set to store (None: leave it), applied atomically
against every other process (a file lock; Elasticsearch's `op_type=create` and
`if_seq_no`; Redis' WATCH/MULTI), so two processes starting at once, or a rotation racing a
start, end with one key set that both use. A store that cannot be reached raises
`KeyStoreUnavailable`: a process never makes keys of its own then, which would fork the set.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from elasticsearch import ApiError as EsApiError
from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError
from elasticsearch import TransportError as EsTransportError
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from indexer.store.elasticsearch import PATIENT, ClientFactory, default_client
from indexer.store.sqlite_files import FILE_MODE, private_dir, private_file
from verify.receipts.keyset import KeySet
from verify.settings import Settings

log = logging.getLogger("verify.receipts")
Step = Callable[[KeySet | None], KeySet | None]
FILE_NAME = "receipt-keys.json"


class KeyStoreUnavailable(Exception):
    """The shared store did not answer, or its key set cannot be read."""


class KeyStore(Protocol):
    #: Where the keys are, for logs and the command line (never a secret).
    where: str

    async def load(self) -> KeySet | None: ...

    async def change(self, step: Step) -> KeySet | None: ...


def _parse(raw: bytes | str | None, where: str) -> KeySet | None:
    if raw is None:
        return None
    try:
        return KeySet.from_json(raw)
    except ValueError as exc:
        raise KeyStoreUnavailable(f"{where}: {exc}") from None


class FileKeyStore:
    """`own_dir`: the data directory's file, whose directory is made owner-only too; a
    configured file's directory is left as it is (a secret mount, /etc/...)."""

    def __init__(self, path: Path, *, own_dir: bool) -> None:
        self.path = path
        self.own_dir = own_dir
        self.where = str(path)

    async def load(self) -> KeySet | None:
        return await asyncio.to_thread(self._load)

    async def change(self, step: Step) -> KeySet | None:
        return await asyncio.to_thread(self._change, step)

    @property
    def _lock(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _load(self) -> KeySet | None:
        for path in (self.path, self._lock):  # owner-only, as every file of the data directory
            _owner_only(path)
        try:
            return _parse(self.path.read_bytes(), self.where)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreUnavailable(f"{self.path}: {exc}") from None

    def _change(self, step: Step) -> KeySet | None:
        if self.own_dir:
            private_dir(self.path.parent)
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # processes sharing the file take turns
            current = self._load()
            new = step(current)
            if new is None:
                return current
            self._write(new.to_json())
            return new
        finally:
            os.close(fd)  # releases the lock

    def _write(self, data: bytes) -> None:
        """Written aside (0600 from its creation) and renamed into place, so no process ever
        reads half a key set."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if self.own_dir:
            private_file(self.path)


def _owner_only(path: Path) -> None:
    """`path` made 0600 when others may read it (left so by hand); refused when it cannot
    be (a key file someone else owns)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if mode & 0o077:
        try:
            path.chmod(FILE_MODE)
        except OSError as exc:
            raise KeyStoreUnavailable(
                f"{path} is mode {mode:o}, open to others, and cannot be made 0600: {exc}"
            ) from None


class RedisKeyStore:
    def __init__(self, client: Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.where = f"redis key {key}"

    async def load(self) -> KeySet | None:
        try:
            raw = await self.client.get(self.key)
        except RedisError as exc:
            raise KeyStoreUnavailable(f"{self.where}: {exc}") from None
        return _parse(raw, self.where)

    async def change(self, step: Step) -> KeySet | None:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(self.key)
                        current = _parse(await pipe.get(self.key), self.where)
                        new = step(current)
                        if new is None:
                            await pipe.unwatch()  # type: ignore[no-untyped-call]
                            return current
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(self.key, new.to_json())
                        await pipe.execute()
                        return new
                    except WatchError:  # another process changed it meanwhile: again
                        continue
        except RedisError as exc:
            raise KeyStoreUnavailable(f"{self.where}: {exc}") from None


_ES_DOC = "current"
_ES_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {"keyset": {"type": "keyword", "index": False, "doc_values": False}},
}


class EsKeyStore:
    """One document (`keyset`: the set's JSON, neither indexed nor searchable) in an index of
    its own, read by a realtime GET and replaced only if unchanged since it was read."""

    def __init__(self, client: AsyncElasticsearch, index: str) -> None:
        self.client = client
        self.index = index
        self.where = f"elasticsearch index {index}"

    async def _get(self) -> tuple[KeySet | None, tuple[int, int]]:
        """The stored set and its (seq_no, primary_term), which a replacement must match."""
        try:
            doc = await self.client.get(index=self.index, id=_ES_DOC, realtime=True)
        except NotFoundError:
            return None, (0, 0)
        return _parse(doc["_source"].get("keyset"), self.where), (
            doc["_seq_no"],
            doc["_primary_term"],
        )

    async def load(self) -> KeySet | None:
        with _es_unavailable(self.where):
            return (await self._get())[0]

    async def change(self, step: Step) -> KeySet | None:
        with _es_unavailable(self.where):
            await self._ensure_index()
            while True:
                current, version = await self._get()
                new = step(current)
                if new is None:
                    return current
                body = {"keyset": new.to_json().decode()}
                try:
                    if current is None:
                        await self.client.create(
                            index=self.index, id=_ES_DOC, document=body, refresh=True
                        )
                    else:
                        await self.client.index(
                            index=self.index,
                            id=_ES_DOC,
                            document=body,
                            refresh=True,
                            if_seq_no=version[0],
                            if_primary_term=version[1],
                        )
                except ConflictError:  # another process wrote first: read it again
                    continue
                return new

    async def _ensure_index(self) -> None:
        if await self.client.indices.exists(index=self.index):
            return
        with contextlib.suppress(EsApiError):  # created by another process meanwhile
            await self.client.indices.create(
                index=self.index, mappings=_ES_MAPPINGS, settings={"number_of_shards": 1}
            )


@contextlib.contextmanager
def _es_unavailable(where: str) -> Any:
    try:
        yield
    except (EsTransportError, EsApiError) as exc:
        if isinstance(exc, NotFoundError | ConflictError):
            raise
        raise KeyStoreUnavailable(f"{where}: {exc}") from None


@contextlib.asynccontextmanager
async def open_keystore(
    settings: Settings,
    *,
    es_clients: ClientFactory | None = None,
) -> AsyncIterator[KeyStore]:
    """The key store the settings say: a configured file first (`INVOICE_RECEIPT_KEY_FILE`),
    else Elasticsearch, else Redis, else the data directory's file. `es_clients`: the
    service's shared clients."""
    if settings.receipt_key_file is not None:
        yield FileKeyStore(settings.receipt_key_file, own_dir=False)
    elif settings.es_url:
        factory = es_clients or default_client
        client = factory(settings.es_url, PATIENT)
        try:
            yield EsKeyStore(client, f"{settings.es_index_prefix}-receipt-keys")
        finally:
            if es_clients is None:
                await client.close()
    elif settings.redis_url:
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            yield RedisKeyStore(redis, f"{settings.redis_namespace}:receipt-keys")
        finally:
            await redis.aclose()
    else:
        yield FileKeyStore(settings.data_dir / FILE_NAME, own_dir=True)


async def load_or_create(store: KeyStore) -> KeySet:
    """The stored key set, made (once, whoever gets there first) when there is none."""
    keys = await store.load()
    if keys is not None:
        return keys
    first = KeySet.generate()
    stored = await store.change(lambda current: first if current is None else None)
    assert stored is not None
    if stored is first:  # not another process's, made meanwhile
        log.warning(
            "no receipt keys existed: made the first",
            extra={"kid": first.current.kid, "where": store.where},
        )
    return stored


async def rotate(store: KeyStore) -> KeySet:
    """A new current key; the old public keys stay listed."""
    rotated = await store.change(
        lambda current: KeySet.generate() if current is None else current.rotated()
    )
    assert rotated is not None
    return rotated
