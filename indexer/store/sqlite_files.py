"""Opening the small SQLite files beside the invoice store (registry, originals, access):
WAL, a busy timeout, the durability each one needs, and its idempotent schema.

Every file of the data directory is owner-only (`private_file`, in a 0700 `private_dir`):
it holds API key hashes, the audit trail, invoices and the intake journal. SQLite creates a
database's `-wal`, `-shm` and `-journal` files with the database file's own permissions, so
creating the database file 0600 first makes them 0600 too; files made by an older version
are tightened when opened."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import aiosqlite

_SYNCHRONOUS = {"FULL": "PRAGMA synchronous = FULL", "NORMAL": "PRAGMA synchronous = NORMAL"}
#: The files SQLite keeps beside a database.
SIDE_FILES = ("-wal", "-shm", "-journal")
DIR_MODE, FILE_MODE = 0o700, 0o600


def private_dir(path: Path) -> None:
    """`path` (and missing parents) as a directory only its owner may enter (0700): `mkdir`'s
    mode is masked by the umask and ignored for a directory that exists, hence the chmod."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)


def private_file(path: Path) -> None:
    """`path` created if missing, owner read/write only (0600), in a `private_dir`, with the
    SQLite side files that already exist tightened too."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    for name in (path.name, *(path.name + side for side in SIDE_FILES)):
        try:
            mode = (path.parent / name).stat().st_mode & 0o777
            if mode != FILE_MODE:
                (path.parent / name).chmod(FILE_MODE)
        except FileNotFoundError:
            continue


@asynccontextmanager
async def open_sqlite_file(path: Path, schema: str, *,
                           synchronous: Literal["FULL", "NORMAL"] = "FULL",
                           ) -> AsyncIterator[aiosqlite.Connection]:
    """`FULL`: a commit is on disk before it returns (what was acknowledged stays).
    `NORMAL`: a power cut may lose the last commits, never corrupt the file."""
    private_file(path)
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(_SYNCHRONOUS[synchronous])
        await conn.executescript(schema)
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def write_transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """One write transaction (`BEGIN IMMEDIATE`: the write lock taken up front): committed,
    or rolled back on any exception, a failed COMMIT included, unless SQLite already rolled
    it back itself; the original error is what is raised."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
