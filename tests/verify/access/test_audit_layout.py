"""The access file's layout: the audit indexes no query used are gone, from new files and
from files an older version made, with no query's plan changed and no row touched."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from verify.access.audit import _SELECT, AuditTrail
from verify.access.db import _SCHEMA, open_access_db

#: Every statement that reads the audit table, with parameters for each way it is called.
#: (`AuditTrail.query`, `AuditTrail.purge`, `AuditShipper.ship`)
_READS = [(_SELECT, (None, None, None, None, None, 100)),
          (_SELECT, ("k1", None, None, None, None, 100)),
          (_SELECT, (None, "verify", "vn:1", None, None, 1000)),  # check_count
          (_SELECT, (None, "verify", None, 1.0, 2.0, 100)),
          ("DELETE FROM audit WHERE at_ts < ?", (1.0,)),
          ("SELECT id, at FROM audit WHERE id > ? ORDER BY id LIMIT ?", (0, 5000))]


def _old_file(path: Path) -> None:
    """An access file as the version before made it: layout 1, three audit indexes, rows."""
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    conn.execute("INSERT INTO audit (at, at_ts, key_id, role, action, target, outcome, client)"
                 " VALUES ('2026-12-01T10:00:00.123+00:00', 1764583200.123, 'k1', 'verify',"
                 " 'verify', 'vn:1', 'valid', '127.0.0.1')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                            " AND tbl_name = 'audit'").fetchall()
    return {r[0] for r in rows}


def _plans(conn: sqlite3.Connection) -> list[list[str]]:
    return [[r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            for sql, params in _READS]


async def test_an_old_file_loses_the_unused_indexes_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "access.sqlite3"
    _old_file(path)
    assert _indexes(path) == {"audit_at", "audit_key", "audit_target"}
    async with open_access_db(path) as conn:
        trail = AuditTrail(conn, retention=timedelta(days=30))
        entries = await trail.query(key_id="k1")
        assert [(e.at, e.target, e.outcome) for e in entries] == [
            (datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC), "vn:1", "valid")]
        version = next(iter(await conn.execute_fetchall("PRAGMA user_version")))[0]
    assert version == 2
    assert _indexes(path) == {"audit_at"}


async def test_a_new_file_has_the_time_index_alone(tmp_path: Path) -> None:
    path = tmp_path / "access.sqlite3"
    async with open_access_db(path):
        pass
    assert _indexes(path) == {"audit_at"}


def test_no_read_of_the_trail_used_the_dropped_indexes(tmp_path: Path) -> None:
    """Each read's plan is the same with the two indexes as without them (statistics
    included: ANALYZE over rows where a key or a target is rare)."""
    plans = []
    for name, drop in (("before", False), ("after", True)):
        conn = sqlite3.connect(tmp_path / f"{name}.sqlite3")
        conn.executescript(_SCHEMA)
        conn.executemany(
            "INSERT INTO audit (at, at_ts, key_id, role, action, target, outcome, client)"
            " VALUES ('x', ?, ?, 'verify', 'verify', ?, 'valid', NULL)",
            [(float(i), f"k{i % 50}", f"vn:{i}") for i in range(2000)])
        if drop:
            conn.executescript("DROP INDEX audit_key; DROP INDEX audit_target;")
        conn.execute("ANALYZE")
        plans.append(_plans(conn))
        conn.close()
    assert plans[0] == plans[1]
    assert all("audit_key" not in p and "audit_target" not in p
               for plan in plans[0] for p in plan)
