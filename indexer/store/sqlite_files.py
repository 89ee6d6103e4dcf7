"""Opening the small SQLite files beside the invoice store (registry, originals, access):
WAL, a busy timeout, the durability each one needs, and its idempotent schema.

Every file of the data directory is owner-only (`private_file`, in a 0700 `private_dir`):
it holds API key hashes, the audit trail, invoices and the intake journal. SQLite creates a
database's `-wal`, `-shm` and `-journal` files with the database file's own permissions, so
creating the database file 0600 first makes them 0600 too; files made by an older version
are tightened when opened.

One migration scheme for every file (`migrate`): `PRAGMA user_version` counts the numbered
steps a file has been through, and the missing ones run in one write transaction, the
version read again inside it, so two processes opening a file at once migrate it once."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, TypeAlias

import aiosqlite

#: The file's pages read through a shared mapping (`PRAGMA mmap_size`): a page of the file
#: costs no `pread64` and no copy. Safe with WAL across this host's processes (Linux has a
#: unified buffer cache, and pages still in the WAL are read from it as before); the file is
#: never truncated under a mapping (no VACUUM, no auto_vacuum), which is what could fault.
READ_MMAP_BYTES = 256 * 1024 * 1024
#: SQLite's own page cache per read connection, KiB (`PRAGMA cache_size` negative): WAL
#: pages and the b-tree's inner pages stay decoded between reads (the default is 2 MiB).
READ_CACHE_KIB = 16 * 1024
READ_PRAGMAS = (f"PRAGMA mmap_size = {READ_MMAP_BYTES:d}",
                f"PRAGMA cache_size = -{READ_CACHE_KIB:d}")

_SYNCHRONOUS = {"FULL": "PRAGMA synchronous = FULL", "NORMAL": "PRAGMA synchronous = NORMAL"}
#: The files SQLite keeps beside a database.
SIDE_FILES = ("-wal", "-shm", "-journal")
DIR_MODE, FILE_MODE = 0o700, 0o600
#: One step of a file's layout: SQL statements, or a coroutine given the connection. Step `i`
#: (counting from 0) takes a file from `user_version` i to i + 1, inside the transaction.
Step: TypeAlias = str | Callable[[aiosqlite.Connection], Awaitable[None]]


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


#: How long a process opening a file waits for another one switching it into WAL.
WAL_SWITCH_WAIT_S = 5.0


async def _into_wal(conn: aiosqlite.Connection) -> None:
    """`PRAGMA journal_mode = WAL`, again while another process holds the lock it needs:
    the switch of a new file (two processes started together on one data directory) does
    not wait through the busy handler as other statements do, it fails at once with
    "database is locked" (seen in tests/verify/test_first_admin_key.py: the second `serve`
    died opening `registry.sqlite3`)."""
    deadline = asyncio.get_running_loop().time() + WAL_SWITCH_WAIT_S
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.01)


@asynccontextmanager
async def open_sqlite_file(path: Path, layout: str | Sequence[Step], *,
                           synchronous: Literal["FULL", "NORMAL"] = "FULL",
                           ) -> AsyncIterator[aiosqlite.Connection]:
    """`layout`: the file's migration steps (`migrate`); one script is step 1 alone, for a
    file whose layout never changed.
    `FULL`: a commit is on disk before it returns (what was acknowledged stays).
    `NORMAL`: a power cut may lose the last commits, never corrupt the file."""
    private_file(path)
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await _into_wal(conn)
        await conn.execute(_SYNCHRONOUS[synchronous])
        await migrate(conn, (layout,) if isinstance(layout, str) else layout)
        yield conn
    finally:
        await conn.close()


async def _user_version(conn: aiosqlite.Connection, newest: int) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    version = int(rows[0][0])
    if version > newest:
        raise RuntimeError(f"database schema {version} is newer than this code ({newest})")
    return version


async def run_script(conn: aiosqlite.Connection, script: str) -> None:
    """Each statement of `script` in turn, inside the caller's transaction (`executescript`
    would COMMIT it first); a trigger's inner `;` does not end its statement."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            await conn.execute(statement)
            statement = ""
    if statement.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement: {statement!r}")


async def migrate(conn: aiosqlite.Connection, steps: Sequence[Step]) -> int:
    """Bring the file to version `len(steps)`: the steps it has not been through, in order, in
    one write transaction (all of them or none). The version is read again once the write
    lock is held: a process that migrated meanwhile leaves nothing to do. A file newer than
    the code (a later release's) is refused with `RuntimeError`. Returns the version found."""
    newest = len(steps)
    found = await _user_version(conn, newest)
    if found == newest:
        return found
    async with write_transaction(conn):
        found = await _user_version(conn, newest)
        for step in steps[found:]:
            if isinstance(step, str):
                await run_script(conn, step)
            else:
                await step(conn)
        if found < newest:
            await conn.execute(f"PRAGMA user_version = {newest:d}")
    return found


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
