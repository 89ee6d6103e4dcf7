"""The distributed deployment's shared state (docs/deployment.md#many-processes): with
`INVOICE_ES_URL` every process keeps its own local files, as the embedded default does, and
meets the others on Elasticsearch (`indexer.store.es_state`). `verify.services` opens this
once per process; its background loop keeps the two in step:

- API keys both ways (`verify.access.shared_keys`), every second and at once when the admin
  API changes one (`nudge`);
- the audit trail, shipped from the local file (`verify.access.shared_audit`), every second;
- the gap ledger: each local gap whose asks grew, and the resolutions learnt back
  (`fallback.shared_gaps`), every second;
- (outage windows travel with the outage log's own refreshes: `fallback.shared_outages`)
- old audit entries purged from the cluster once a day.

A step that fails (the cluster down or slow: each is bounded) is tried again at the next
tick, and the process goes on from its local files meanwhile. The last shipment is made at
close, so a CLI command's changes leave with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from elasticsearch import ApiError

from fallback.gaps import SqliteGapLedger
from fallback.shared_file import SharedFile, open_shared_file
from fallback.shared_gaps import CLAIM_S, SharedGapLedger
from fallback.shared_outages import WindowSync
from indexer.store.elasticsearch import ClientFactory
from indexer.store.es_bulk import BulkWriteError
from indexer.store.es_state import SharedStateStore, open_shared_state
from indexer.store.protocol import StoreUnavailableError
from verify.access.db import open_access_db
from verify.access.shared_audit import AuditShipper
from verify.access.shared_keys import SYNC_INTERVAL_S, KeySync
from verify.settings import Settings

log = logging.getLogger("verify.shared_state")

#: What a failed step raises when the cluster is down, slow or refuses a write.
SYNC_ERRORS = (StoreUnavailableError, TimeoutError, BulkWriteError, ApiError, OSError)
#: Bound of one step of the loop, and of the first pull and the last push.
STEP_TIMEOUT_S = 10.0
START_TIMEOUT_S = 3.0
_DAY = 86_400.0


def shared_file_path(data_dir: Path) -> Path:
    return data_dir / "shared.sqlite3"


@dataclass
class SharedState:
    store: SharedStateStore
    file: SharedFile
    keys: KeySync
    audit: AuditShipper
    #: The `OutageLog`'s sharing: it syncs at each of its refreshes (every probe).
    windows: WindowSync
    audit_retention: timedelta
    #: The gap ledger while the service graph has it open (`share_gaps`).
    gaps: SharedGapLedger | None = None
    #: Called when gaps recorded while the cluster was down reach it (the reconciler's
    #: wake-up: they are re-checked at once, not at its next periodic check).
    on_gaps_arrived: Callable[[], None] | None = None
    _keys_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _failing: set[str] = field(default_factory=set)

    def nudge(self) -> None:
        """A key was created or revoked here: push it now, not at the next tick."""
        self._keys_changed.set()

    async def sync_keys(self) -> None:
        await self.keys.push()
        await self.keys.pull()

    async def _step(
        self, name: str, step: Callable[[], Awaitable[object]], bound: float = STEP_TIMEOUT_S
    ) -> bool:
        """One bounded step; a failure is logged once until the step works again."""
        try:
            async with asyncio.timeout(bound):
                await step()
        except SYNC_ERRORS as exc:
            if name not in self._failing:
                self._failing.add(name)
                log.warning(
                    "shared state: %s failed; the local copy goes on and the step is retried",
                    name,
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
            return False
        if name in self._failing:
            self._failing.discard(name)
            log.info("shared state: %s works again", name)
        return True

    async def _every(
        self,
        name: str,
        interval: float,
        step: Callable[[], Awaitable[object]],
        wake: asyncio.Event | None = None,
    ) -> None:
        while True:
            try:
                await self._step(name, step)
            except Exception:  # a bug must not stop the other steps or the next tick
                log.exception("shared state: %s failed unexpectedly", name)
            if wake is None:
                await asyncio.sleep(interval)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await wake.wait()
            wake.clear()

    async def forward_gaps(self) -> None:
        if self.gaps is None:
            return
        backlog = "gaps" in self._failing  # the last forward failed: an outage's gaps
        if await self.gaps.forward() and backlog and self.on_gaps_arrived is not None:
            self.on_gaps_arrived()

    @contextlib.asynccontextmanager
    async def share_gaps(
        self, local: SqliteGapLedger, *, max_attempts: int
    ) -> AsyncIterator[SharedGapLedger]:
        """The deployment's gap ledger over the process's `local` one, forwarded by the
        loop while open; what waits is sent at close, before `local` closes."""
        ledger = SharedGapLedger(
            local, self.store, self.file, max_attempts=max_attempts, claim_seconds=CLAIM_S
        )
        self.gaps = ledger
        try:
            yield ledger
        finally:
            self.gaps = None
            await self.last("gaps", ledger.forward)
            ledger.closed = True

    async def run(self) -> None:
        await asyncio.gather(
            self._every("keys", SYNC_INTERVAL_S, self.sync_keys, self._keys_changed),
            self._every("audit", SYNC_INTERVAL_S, self.audit.ship),
            self._every("gaps", SYNC_INTERVAL_S, self.forward_gaps),
            self._every("audit purge", _DAY, lambda: self.audit.purge(self.audit_retention)),
        )

    async def start(self) -> None:
        """Before the process serves: the deployment's keys (so a new process makes no
        admin key of its own when the deployment has one), within `START_TIMEOUT_S`."""
        await self._step("keys", self.sync_keys, START_TIMEOUT_S)

    async def last(self, name: str, step: Callable[[], Awaitable[object]]) -> None:
        """At close: what is still local leaves now, unless the cluster is known to be down
        (it waits in the local files for the next start, and the close is not held)."""
        if name not in self._failing:
            await self._step(name, step, START_TIMEOUT_S)

    async def finish(self) -> None:
        await self.last("keys", self.keys.push)
        await self.last("audit", self.audit.ship)


@contextlib.asynccontextmanager
async def open_shared(settings: Settings, clients: ClientFactory) -> AsyncIterator[SharedState]:
    """The shared state of a process with `INVOICE_ES_URL`, its loop running meanwhile."""
    assert settings.es_url is not None
    async with (
        open_shared_state(
            settings.es_url,
            index_prefix=settings.es_index_prefix,
            client_factory=clients,
            startup_timeout=START_TIMEOUT_S,  # else its layout is made at first use
        ) as store,
        open_shared_file(shared_file_path(settings.data_dir)) as file,
        open_access_db(settings.access_path) as access,
    ):
        state = SharedState(
            store,
            file,
            KeySync(access, file, store),
            AuditShipper(access, file, store),
            WindowSync(file, store),
            timedelta(days=settings.audit_retention_days),
        )
        await state.start()
        loop = asyncio.create_task(state.run(), name="shared-state")
        try:
            yield state
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await state.finish()
