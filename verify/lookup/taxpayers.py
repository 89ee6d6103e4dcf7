"""The registry as the request path reads it: a Vietnamese seller's record, read for every
found invoice's `seller_status`, is kept for `TTL_S` instead of being read from the
registry store on every lookup (on SQLite a round trip through aiosqlite's thread and a
JSON decode of the record: the largest part of a found lookup's CPU besides aiohttp's own).

An import through this process (`POST /admin/registry`) is in force here at once: it goes
through `CachedRegistry.import_registry`, which forgets every kept record, and a read that
began before the import does not keep what it read. An import by another process (the
CLI, another worker or host) is seen within `TTL_S` (docs/registry.md); on the embedded
SQLite registry within `RECHECK_S` instead: the file's `PRAGMA data_version` (moved by any
other connection's commit) is read at most that often (`data_version`), and while it stays
the same a kept record holds for good. Intake does not read through this: its registry
checks read the store as before.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from indexer.registry import Provider, RegistryImport, Taxpayer
from indexer.store.registry import RegistryStore

#: How long a seller's record read from the registry answers lookups.
TTL_S = 1.0
#: Records kept at most (distinct sellers asked about within `TTL_S`); beyond, all go.
MAX_KEPT = 50_000
#: With a change signal (`data_version`): how often it is read at most.
RECHECK_S = 0.001


class CachedRegistry:
    """A `RegistryStore` whose `get_taxpayers` answers from records read in the last `TTL_S`
    (taxpayers the registry lacks included); everything else goes to `inner`."""

    def __init__(self, inner: RegistryStore, *, ttl: float = TTL_S,
                 clock: Callable[[], float] = time.monotonic,
                 version: Callable[[], int] | None = None) -> None:
        """`version`: the registry's change signal (`data_version`), when it has one: kept
        records then hold until it moves, not only `ttl`."""
        self.inner = inner
        self._ttl = math.inf if version is not None else ttl
        self._clock = clock
        self._kept: dict[str, tuple[float, Taxpayer | None]] = {}
        self._generation = 0  # moved by every import through this process, and the signal
        self._loading: dict[tuple[str, ...], asyncio.Future[dict[str, Taxpayer]]] = {}
        self._version = version
        self._seen: int | None = None
        self._checked_at = -math.inf

    def _recheck(self) -> None:
        """Everything kept goes when the registry's signal moved (or cannot be read)."""
        if self._version is None:
            return
        now = self._clock()
        if now - self._checked_at < RECHECK_S:
            return
        self._checked_at = now
        try:
            version: int | None = self._version()
        except sqlite3.Error:
            version = None
        if version is None or version != self._seen:
            self._seen = version
            self._forget()

    def _forget(self) -> None:
        self._generation += 1
        self._kept.clear()
        self._loading.clear()  # reads begun before are not shared after

    async def get_taxpayers(self, tax_ids: Iterable[str]) -> dict[str, Taxpayer]:
        self._recheck()
        now = self._clock()
        found: dict[str, Taxpayer] = {}
        missing: list[str] = []
        for tax_id in tax_ids:
            kept = self._kept.get(tax_id)
            if kept is None or now - kept[0] >= self._ttl:
                missing.append(tax_id)
            elif kept[1] is not None:
                found[tax_id] = kept[1]
        if not missing:
            return found
        wanted = tuple(missing)
        loading = self._loading.get(wanted)
        if loading is None:  # the lookups of one seller waiting at once share one read
            loading = asyncio.ensure_future(self._read(wanted, now))
            self._loading[wanted] = loading
            loading.add_done_callback(lambda done: self._done(wanted, done))
        found.update(await asyncio.shield(loading))
        return found

    @property
    def generation(self) -> int:
        """Moved by every import through this process (twice: as it begins and as it ends)
        and whenever the change signal moved (read here, at most every `RECHECK_S`), so what
        was built from records read before can tell (`verify.lookup.reuse`)."""
        self._recheck()
        return self._generation

    def remaining(self, tax_id: str) -> float | None:
        """Seconds the kept record of `tax_id` (the registry's lack of one included) still
        answers lookups; None when none is kept. What is built from the record is valid this
        long: an import by another process is then seen within `TTL_S`, as it is here."""
        kept = self._kept.get(tax_id)
        if kept is None:
            return None
        left = self._ttl - (self._clock() - kept[0])
        return left if left > 0 else None

    def _done(self, wanted: tuple[str, ...], done: asyncio.Future[dict[str, Taxpayer]]) -> None:
        if self._loading.get(wanted) is done:
            del self._loading[wanted]
        if not done.cancelled():
            done.exception()  # retrieved here too, in case every caller gave up waiting

    async def _read(self, wanted: tuple[str, ...], now: float) -> dict[str, Taxpayer]:
        generation = self._generation
        read = await self.inner.get_taxpayers(wanted)
        if generation == self._generation:  # no import since the read began
            if len(self._kept) + len(wanted) > MAX_KEPT:
                self._kept.clear()
            for tax_id in wanted:
                self._kept[tax_id] = (now, read.get(tax_id))
        return read

    async def import_registry(self, registry: RegistryImport) -> None:
        self._forget()
        try:
            await self.inner.import_registry(registry)
        finally:
            self._generation += 1
            self._kept.clear()
            self._checked_at = -math.inf  # the next read takes the file's new signal

    async def is_empty(self) -> bool:
        return await self.inner.is_empty()

    async def get_provider(self, provider_id: str) -> Provider | None:
        return await self.inner.get_provider(provider_id)

    async def counts(self) -> dict[str, int]:
        return await self.inner.counts()


def data_version(path: Path) -> tuple[Callable[[], int], Callable[[], None]]:
    """The SQLite registry file's change signal: its `PRAGMA data_version`, which moves when
    any other connection (an import through the store, the CLI, another process) commits,
    read on a read-only connection of its own on the event loop (a few microseconds); and
    the connection's close."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 100")

    def version() -> int:
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    return version, conn.close
