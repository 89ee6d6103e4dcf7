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

The first admin key (`claim_admin`, at the start, after the keys' first pull): with no
active admin key in the deployment, every process that starts would make one of its own,
and processes started together (compose's replicas) each did. Instead the n-th first-run
admin key has a fixed id (`bootstrap_key_id(n)`, n counting past revoked ones) and is
created in the cluster with `op_type=create`: exactly one process wins, writes the token to
its `admin.key` and keeps the key in its copy; every other one reads the winner's key into
its copy (it authenticates everywhere at once) and writes no `admin.key`. With the cluster
unreachable at the first start a process makes a key of its own, as a process alone does
(`verify.access.service.bootstrap_admin`).

A step that fails (the cluster down or slow: each is bounded) is tried again at the next
tick, and the process goes on from its local files meanwhile. The last shipment is made at
close, so a CLI command's changes leave with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiosqlite
from elasticsearch import ApiError

from fallback.gaps import SqliteGapLedger
from fallback.shared_file import SharedFile, open_shared_file
from fallback.shared_gaps import CLAIM_S, SharedGapLedger
from fallback.shared_outages import WindowSync
from fallback.wake import wait_event
from indexer.store.elasticsearch import ClientFactory
from indexer.store.es_bulk import BulkWriteError
from indexer.store.es_state import SharedStateStore, Versioned, open_shared_state
from indexer.store.protocol import StoreUnavailableError
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.access.service import BOOTSTRAP_NAME, write_admin_token
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


#: How many first-run admin keys a deployment may make (each revoked in turn).
MAX_BOOTSTRAPS = 1000


def bootstrap_key_id(n: int) -> str:
    """The id of the deployment's n-th first-run admin key (a key id's 12 hex digits)."""
    return f"{n:012x}"


def _bootstrap_source(key_id: str, secret: str) -> dict[str, object]:
    return {
        "key_id": key_id,
        "secret_hash": hashlib.sha256(secret.encode()).hexdigest(),
        "role": Role.ADMIN.value,
        "scopes": [],
        "name": BOOTSTRAP_NAME,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "created_by": None,
        "revoked_at": None,
        "updated_ts": time.time(),
    }


@dataclass
class SharedState:
    store: SharedStateStore
    file: SharedFile
    keys: KeySync
    audit: AuditShipper
    #: The `OutageLog`'s sharing: it syncs at each of its refreshes (every probe).
    windows: WindowSync
    audit_retention: timedelta
    #: The process's `access.sqlite3` (its copy of the keys).
    access: aiosqlite.Connection
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
            await wait_event(wake, interval)
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

    async def start(self, admin_key: Path | None = None) -> None:
        """Before the process serves: the deployment's keys (so a new process makes no
        admin key of its own when the deployment has one), within `START_TIMEOUT_S`; then,
        with `admin_key` (keys are on) and no active admin key, the first one
        (`claim_admin`)."""
        if await self._step("keys", self.sync_keys, START_TIMEOUT_S) and admin_key:
            await self._step("admin key", lambda: self.claim_admin(admin_key),
                             START_TIMEOUT_S)

    async def claim_admin(self, path: Path) -> str | None:
        """The deployment's first admin key, made by exactly one process (module
        docstring): the token when this process made it (written to `path`), else None."""
        if await KeyStore(self.access).has_active_admin():
            return None
        alias = self.store.layout.keys
        for n in range(1, MAX_BOOTSTRAPS + 1):
            key_id = bootstrap_key_id(n)
            doc = await self.store.get(alias, key_id)
            if doc is None:
                secret = secrets.token_urlsafe(32)
                if await self.store.create(alias, key_id, _bootstrap_source(key_id, secret)):
                    await self.store.refresh(alias)
                    await self.keys.learn([await self._read(alias, key_id)])
                    token = f"ivk_{key_id}_{secret}"
                    write_admin_token(path, token)
                    log.warning("no admin key existed in the deployment: made the first",
                                extra={"key_id": key_id, "token_file": str(path)})
                    return token
                doc = await self._read(alias, key_id)  # another process won it just now
            if doc.source.get("revoked_at") is None:
                await self.keys.learn([doc])
                log.info("the deployment's first admin key was made by another process",
                         extra={"key_id": key_id})
                return None
        return None

    async def _read(self, alias: str, doc_id: str) -> Versioned:
        doc = await self.store.get(alias, doc_id)
        if doc is None:  # created, then gone: a reset of the cluster under our feet
            raise StoreUnavailableError(f"{alias}/{doc_id} vanished after its creation")
        return doc

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
            access,
        )
        await state.start(None if settings.insecure_local else settings.admin_key_path)
        loop = asyncio.create_task(state.run(), name="shared-state")
        try:
            yield state
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await state.finish()
