"""The SQLite dialect: its statements, `?` parameters, key lists as one JSON array (json_each), times as
microseconds since the epoch, and writes in batches of BATCH rows (one VALUES list or executemany each)."""

from __future__ import annotations

import functools
import itertools
import json
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hatchet_manifest.ledger.base import BATCH
from hatchet_manifest.ledger.dialect import Dialect, replacing
from hatchet_manifest.ledger.migrations import VERSION_TABLE
from hatchet_manifest.ledger.values import AdoptedRow, LedgerEntry, PendingRow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

_FIRST = operator.itemgetter(0)

# Writers on the hot path send one statement per batch: a VALUES list joined to the table costs about half
# of one statement per row (see bench/ledger.py).
UPSERT_PENDING = """
WITH v (key, digest, manifest, file) AS (VALUES {values})
INSERT INTO ledger_runs (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
SELECT ?, key, digest, NULL, manifest, file, 'pending', NULL, ?, ? FROM v WHERE true
ON CONFLICT (target_id, key) DO UPDATE SET
    digest = excluded.digest, run_id = NULL, manifest = excluded.manifest, file = excluded.file,
    state = 'pending', error = NULL, updated_at = excluded.updated_at
WHERE ledger_runs.state IN ('failed', 'unknown')
RETURNING key
"""

UPSERT_REPLACING = replacing(UPSERT_PENDING)

# UPSERT_PENDING for keys the ledger does not hold; fails (and undoes itself) if one is there.
INSERT_PENDING = UPSERT_PENDING[: UPSERT_PENDING.index("ON CONFLICT")]

UPDATE_SUBMITTED = """
WITH v (key, run_id) AS (VALUES {values})
UPDATE ledger_runs SET state = 'submitted', run_id = v.run_id, error = NULL, updated_at = ?
FROM v
WHERE ledger_runs.target_id = ? AND ledger_runs.key = v.key
    AND (ledger_runs.state <> 'submitted' OR ledger_runs.run_id = v.run_id)
"""

UPDATE_OUTCOME = """
UPDATE ledger_runs SET state = ?, error = ?, updated_at = ?
WHERE target_id = ? AND key = ? AND state <> 'submitted'
"""

UPSERT_ADOPTED = """
INSERT INTO ledger_runs (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, 'submitted', NULL, ?, ?)
ON CONFLICT (target_id, key) DO UPDATE SET
    digest = excluded.digest, run_id = excluded.run_id, manifest = excluded.manifest, file = excluded.file,
    state = 'submitted', error = NULL, updated_at = excluded.updated_at
WHERE ledger_runs.state <> 'submitted' OR ledger_runs.run_id = excluded.run_id
"""

UPSERT_IMPORTED = """
INSERT INTO ledger_runs (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target_id, key) DO UPDATE SET
    digest = excluded.digest, run_id = excluded.run_id, manifest = excluded.manifest, file = excluded.file,
    state = excluded.state, error = excluded.error, created_at = excluded.created_at,
    updated_at = excluded.updated_at
WHERE ledger_runs.state <> 'submitted' OR (excluded.state = 'submitted' AND excluded.run_id = ledger_runs.run_id)
"""


@functools.lru_cache(maxsize=16)
def with_values(template: str, rows: int, columns: int) -> str:
    """`template` with `{values}` replaced by `rows` placeholders of `columns` parameters each."""
    row = "(" + ", ".join("?" * columns) + ")"
    return template.format(values=", ".join([row] * rows))


def _changes(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Rows a statement inserted, updated or deleted (cursor.rowcount is -1 for a statement starting WITH)."""
    before = conn.total_changes
    conn.execute(sql, params)
    return conn.total_changes - before


def _insert_new(conn: sqlite3.Connection, rows: int, params: Sequence[Any]) -> bool:
    """Insert pending rows for keys new to the ledger (the usual case) with a plain INSERT, a third cheaper than
    the upsert; False, having changed nothing (a failed statement undoes itself), when a key is there."""
    try:
        conn.execute(with_values(INSERT_PENDING, rows, 4), params)
    except sqlite3.IntegrityError:
        return False
    return True


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


class SqliteDialect(Dialect[sqlite3.Connection]):
    param = "?"
    batch_size = BATCH  # 4 parameters a row: far below SQLite's limit of 32766 per statement
    version_table_ddl = (
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    version_table_exists = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{VERSION_TABLE}'"

    def any_of(self, column: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    @staticmethod
    def list_param(values: Sequence[str]) -> str:
        return json.dumps(list(values))

    to_db_time = staticmethod(to_micros)
    from_db_time = staticmethod(from_micros)

    @staticmethod
    def applied_at(moment: datetime) -> str:
        return moment.isoformat()

    def lookup(self, columns: str, target_id: int, keys: Sequence[str]) -> tuple[str, Any]:
        sql = f"SELECT {columns} FROM ledger_runs WHERE target_id = ? AND {self.any_of('key')}"
        return sql, (target_id, json.dumps(list(keys)))

    def insert_pending(
        self, conn: sqlite3.Connection, target_id: int, rows: Sequence[PendingRow], now: Any, replace_submitted: bool
    ) -> Iterable[str]:
        # a PendingRow is (key, digest, manifest, file): its fields are the parameters, in order
        params = [*itertools.chain.from_iterable(rows), target_id, now, now]
        if not replace_submitted and _insert_new(conn, len(rows), params):
            return map(_FIRST, rows)
        sql = with_values(UPSERT_REPLACING if replace_submitted else UPSERT_PENDING, len(rows), 4)
        return [key for (key,) in conn.execute(sql, params)]

    def update_submitted(
        self, conn: sqlite3.Connection, target_id: int, pairs: Sequence[tuple[str, str]], now: Any
    ) -> int:
        params = [*itertools.chain.from_iterable(pairs), now, target_id]
        return _changes(conn, with_values(UPDATE_SUBMITTED, len(pairs), 2), params)

    def update_outcome(
        self, conn: sqlite3.Connection, target_id: int, keys: Sequence[str], state: str, error: str, now: Any
    ) -> int:
        return conn.executemany(UPDATE_OUTCOME, [(state, error, now, target_id, key) for key in keys]).rowcount

    def upsert_adopted(self, conn: sqlite3.Connection, target_id: int, rows: Sequence[AdoptedRow], now: Any) -> int:
        params = [(target_id, r.key, r.digest, r.run_id, r.manifest, r.file, now, now) for r in rows]
        return conn.executemany(UPSERT_ADOPTED, params).rowcount

    def upsert_imported(self, conn: sqlite3.Connection, rows: Sequence[tuple[int, LedgerEntry]]) -> int:
        params = [
            (
                target_id,
                e.key,
                e.digest,
                e.run_id,
                e.manifest,
                e.file,
                e.state,
                e.error,
                to_micros(e.created_at),
                to_micros(e.updated_at),
            )
            for target_id, e in rows
        ]
        return conn.executemany(UPSERT_IMPORTED, params).rowcount


DIALECT = SqliteDialect()
