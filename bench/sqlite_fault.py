"""A real fault of the embedded primary, held by a process of its own (bench/outage.py).

    python -m bench.sqlite_fault write-lock|wal-lock DB_PATH SECONDS

Prints `held` once the fault is in force, keeps it for SECONDS (or until SIGTERM), then lets
go. Nothing in the service is touched: the fault is what another process on the same file
would do.

- `write-lock`: `BEGIN EXCLUSIVE` on the file and hold the transaction open (a long writer:
  a backup tool, a migration, an operator's `sqlite3` shell). In WAL mode this blocks every
  other writer (they wait for their busy timeout, then fail "database is locked"); readers
  go on reading the last committed state.
- `wal-lock`: hold exclusive POSIX locks on the eight WAL-index lock bytes of the `-shm` file
  (offsets 120-127: write, checkpoint, recover and the five read marks), which is what a
  process running WAL recovery holds. Every read or write transaction on the file then
  retries for about 10 s inside SQLite and fails "locking protocol"; statements that do not
  touch the file (`SELECT 1`) still succeed.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from types import FrameType

#: The unix VFS keeps its WAL-index locks at byte 120 of the -shm file, one byte per lock:
#: 0 write, 1 checkpoint, 2 recover, 3-7 read marks 0-4 (sqlite3.c, UNIX_SHM_BASE).
SHM_LOCK_OFFSET = 120
SHM_LOCK_COUNT = 8
FAULTS = ("write-lock", "wal-lock")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def hold(fault: str, db: Path, seconds: float) -> None:
    if fault == "write-lock":
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            print("held", flush=True)
            time.sleep(seconds)
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    fd = os.open(f"{db}-shm", os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, SHM_LOCK_COUNT, SHM_LOCK_OFFSET,
                    os.SEEK_SET)
        print("held", flush=True)
        time.sleep(seconds)
    finally:
        os.close(fd)  # closing the descriptor drops the locks


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in FAULTS:
        print(__doc__, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    hold(argv[0], Path(argv[1]), float(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
