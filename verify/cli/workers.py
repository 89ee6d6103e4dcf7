"""The processes of `invoice-verify serve`: one, or `--workers N` sharing the port.

Each worker is a process of its own with its own app, listening with `SO_REUSEPORT` on the
same host and port (aiohttp's `reuse_port=True`): the kernel spreads new connections over
the listening sockets, nothing sits between the client and a worker, and one worker's death
leaves the others serving. The parent only starts, watches and stops them: a worker that
dies is started again (its journal slot with it), SIGTERM or SIGINT stops them all
gracefully. Workers are spawned, not forked, so none inherits the parent's event loop,
SQLite connections or threads.

Each process owns an intake journal (the local buffer that makes an acknowledgement
durable): slot 1 is `journal.sqlite3` (one process alone is exactly the embedded default),
slot n `journal-<n>.sqlite3`, claimed with an exclusive `flock` on `<file>.claim` held
for the process's life. Worker n asks for slot n first; a second `serve` on the same data
directory, or a compose replica sharing the volume, takes the lowest free slot. The kernel
drops the lock when the process dies however it dies, so the worker (or replica) started
in its place claims the same file and its reconciler drains what was acknowledged there.

The other SQLite files of the data directory (the embedded store, registry, originals,
keys and audit, gaps, outages) are opened by every worker: SQLite in WAL mode is shared by
the processes of one host (docs/deployment.md#several-workers-on-one-host).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from aiohttp import web

from verify.cli.heap import freeze_startup_heap
from verify.http.logs import AccessLogger, configure_logging
from verify.settings import Settings, SettingsError

log = logging.getLogger("verify.workers")

#: How many journal slots a data directory may have (processes sharing it at once).
JOURNAL_SLOTS = 64
#: A worker that dies sooner than this after its start is restarted after a pause that
#: doubles (up to `MAX_BACKOFF`), so a worker that cannot start does not spin.
QUICK_DEATH_SECONDS = 10.0
MAX_BACKOFF = 30.0
SHUTDOWN_TIMEOUT = 10.0


def journal_name(slot: int) -> str:
    return "journal.sqlite3" if slot == 1 else f"journal-{slot}.sqlite3"


@dataclass(frozen=True, slots=True)
class JournalClaim:
    slot: int
    name: str
    #: The open claim file holding the flock; closed only when the process ends.
    fd: int


def journal_slots(data_dir: Path) -> list[int]:
    """The slots whose journal file exists in `data_dir`, in order."""
    return [slot for slot in range(1, JOURNAL_SLOTS + 1)
            if (data_dir / journal_name(slot)).exists()]


def try_claim(data_dir: Path, slot: int) -> JournalClaim | None:
    """Claim `slot` if no live process holds it (None when one does)."""
    name = journal_name(slot)
    fd = os.open(data_dir / f"{name}.claim", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return JournalClaim(slot, name, fd)


def claim_journal(data_dir: Path, prefer: int = 1) -> JournalClaim:
    """This process's journal slot: `prefer` if free, else the lowest free one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    order = [prefer, *(s for s in range(1, JOURNAL_SLOTS + 1) if s != prefer)]
    for slot in order:
        claim = try_claim(data_dir, slot)
        if claim is not None:
            return claim
    raise SettingsError(f"every journal slot of {data_dir} is held ({JOURNAL_SLOTS} "
                        "processes share it)")


def with_own_journal(settings: Settings, prefer: int = 1) -> tuple[Settings, JournalClaim]:
    claim = claim_journal(settings.data_dir, prefer)
    return replace(settings, journal_file=claim.name), claim


async def _freeze_heap(_app: web.Application) -> None:
    freeze_startup_heap()


def event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """A new event loop of the kind `INVOICE_EVENT_LOOP` names (uvloop or asyncio's)."""
    if settings.event_loop == "uvloop":
        import uvloop  # a dependency on every platform the service runs on (not Windows)

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_app(application: web.Application, settings: Settings, *, reuse_port: bool,
            print_: Callable[[str], None] | None) -> None:
    """Serve until SIGTERM/SIGINT (graceful: requests in flight get `SHUTDOWN_TIMEOUT`)."""
    application.on_startup.append(_freeze_heap)  # after every cleanup_ctx has opened
    web.run_app(application, host=settings.host, port=settings.port, reuse_port=reuse_port,
                access_log_class=AccessLogger, shutdown_timeout=SHUTDOWN_TIMEOUT,
                print=print_, loop=event_loop(settings))


def worker_main(settings: Settings, index: int) -> None:
    """One worker (a spawned process): its journal slot, its app, the shared port."""
    from verify.app import create_app  # imported here: after PROMETHEUS_MULTIPROC_DIR

    configure_logging(settings.log_level, settings.log_format)
    own, claim = with_own_journal(settings, prefer=index)
    log.info("worker started", extra={"worker": index, "pid": os.getpid(),
                                      "journal": own.journal_file})
    run_app(create_app(own), own, reuse_port=True, print_=None)
    os.close(claim.fd)


def metrics_dir(settings: Settings) -> Path:
    """Where the workers' prometheus-client files live (emptied at every start)."""
    return settings.data_dir / "metrics"


def _prepare_metrics(settings: Settings) -> Path:
    path = metrics_dir(settings)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


async def _open_once(settings: Settings) -> None:
    """Open every store once before the workers start, so the files' migrations, the
    Elasticsearch layout and the first admin key are made by one process, not raced."""
    from verify.access.service import open_access
    from verify.services import open_services

    async with open_services(settings), open_access(settings):
        pass


class Supervisor:
    """Starts `count` workers, starts a dead one again, stops them all on a signal."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, BaseProcess] = {}
        self.started_at: dict[int, float] = {}
        self.backoff: dict[int, float] = {}
        self.stopping = False

    def start(self, index: int) -> None:
        proc = self.context.Process(target=worker_main, args=(self.settings, index),
                                    name=f"invoice-verify-worker-{index}")
        proc.start()
        self.workers[index] = proc
        self.started_at[index] = time.monotonic()

    def _stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_signal)
        for index in range(1, self.count + 1):
            self.start(index)
        restart_at: dict[int, float] = {}
        while not self.stopping:
            alive = [p.sentinel for p in self.workers.values() if p.is_alive()]
            wait(alive, timeout=0.5)
            now = time.monotonic()
            for index, proc in list(self.workers.items()):
                if proc.is_alive() or index in restart_at or self.stopping:
                    continue
                restart_at[index] = now + self._pause(index, now)
                self._dead(index, proc)
            for index, when in list(restart_at.items()):
                if when <= now and not self.stopping:
                    del restart_at[index]
                    self.start(index)
        return self.stop()

    def _pause(self, index: int, now: float) -> float:
        quick = now - self.started_at[index] < QUICK_DEATH_SECONDS
        pause = min(MAX_BACKOFF, self.backoff.get(index, 0.5) * 2) if quick else 0.5
        self.backoff[index] = pause
        return pause

    def _dead(self, index: int, proc: BaseProcess) -> None:
        log.warning("worker %s (pid %s) exited with %s; starting it again", index, proc.pid,
                    proc.exitcode, extra={"worker": index, "exitcode": proc.exitcode})
        if proc.pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]

    def stop(self) -> int:
        for proc in self.workers.values():
            if proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid or 0, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT + 5
        for proc in self.workers.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        return 0


def serve_workers(settings: Settings, count: int) -> int:
    """`serve --workers N` (N > 1): prepare once, then run the supervisor until a signal."""
    asyncio.run(_open_once(settings))
    _prepare_metrics(settings)  # after: this process keeps no metrics files of its own
    log.info("starting %s workers on %s:%s", count, settings.host, settings.port)
    return Supervisor(settings, count).run()
