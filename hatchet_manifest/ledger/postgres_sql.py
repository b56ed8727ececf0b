"""The PostgreSQL dialect: its statements, `%s` / `%(name)s` parameters, key lists as one text[] literal per
column (unnest), times as timestamptz, and each write as one statement for the whole call.

Hot-path writes are INSERT ... ON CONFLICT over unnest(): one primary-key probe per row whatever the planner
thinks, row locks taken in key order (ORDER BY key COLLATE "C") so that racing writers cannot deadlock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from hatchet_manifest.ledger.dialect import COLUMNS as COLUMNS  # with the statements, as before
from hatchet_manifest.ledger.dialect import Dialect, replacing
from hatchet_manifest.ledger.migrations import VERSION_TABLE
from hatchet_manifest.ledger.values import AdoptedRow, LedgerEntry, PendingRow

if TYPE_CHECKING:
    import psycopg

# Statements over one target must walk the primary key, whatever the statistics say: with a fresh target (or stale
# statistics) the planner may otherwise scan every row of the target for each page or batch, which turns a
# million-run diff quadratic. Set for the transaction only (safe behind a transaction pooler).
PIN_PLANS = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), "
    "set_config('enable_sort', 'off', true), set_config('enable_hashjoin', 'off', true), "
    "set_config('enable_mergejoin', 'off', true)"
)


def text_array(values: Sequence[str | None]) -> str:
    """A PostgreSQL text[] literal: every element quoted (backslash and double quote escaped), None as NULL.

    Sent as one text parameter and cast with ::text[], it costs a tenth of what adapting a Python list does.
    """
    if not values:
        return "{}"
    if None not in values:
        joined = '","'.join(cast(Sequence[str], values))
        if "\\" not in joined and joined.count('"') == 2 * (len(values) - 1):  # only the separators' quotes
            return '{"' + joined + '"}'
    quoted = ("NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


UPSERT_PENDING = """
INSERT INTO ledger_runs AS r (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
SELECT %(target)s, v.key, v.digest, NULL, v.manifest, v.file, 'pending', NULL, %(now)s, %(now)s
FROM unnest(%(keys)s::text[], %(digests)s::text[], %(manifests)s::text[], %(files)s::text[])
    AS v (key, digest, manifest, file)
ORDER BY v.key COLLATE "C"
ON CONFLICT (target_id, key) DO UPDATE SET
    digest = EXCLUDED.digest, run_id = NULL, manifest = EXCLUDED.manifest, file = EXCLUDED.file,
    state = 'pending', error = NULL, updated_at = EXCLUDED.updated_at
WHERE r.state IN ('failed', 'unknown')
RETURNING r.key
"""

# Changing existing rows by the thousand is written as INSERT ... ON CONFLICT DO UPDATE: the conflict check probes
# the primary key once per row whatever the planner thinks, where an UPDATE ... FROM join would be planned from
# statistics that a fresh target does not have yet. A key that was not in the ledger is inserted as a placeholder
# (xmax = 0 tells), deleted again in the same transaction and reported.
UPDATE_SUBMITTED = """
INSERT INTO ledger_runs AS r (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
SELECT %(target)s, v.key, '', v.run_id, '', '', 'submitted', NULL, %(now)s, %(now)s
FROM unnest(%(keys)s::text[], %(run_ids)s::text[]) AS v (key, run_id)
ORDER BY v.key COLLATE "C"
ON CONFLICT (target_id, key) DO UPDATE SET
    state = 'submitted', run_id = EXCLUDED.run_id, error = NULL, updated_at = EXCLUDED.updated_at
WHERE r.state <> 'submitted' OR r.run_id = EXCLUDED.run_id
RETURNING r.key, r.xmax = 0
"""

UPDATE_OUTCOME = """
INSERT INTO ledger_runs AS r (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
SELECT %(target)s, v.key, '', NULL, '', '', %(state)s, %(error)s, %(now)s, %(now)s
FROM unnest(%(keys)s::text[]) AS v (key)
ORDER BY v.key COLLATE "C"
ON CONFLICT (target_id, key) DO UPDATE SET
    state = EXCLUDED.state, error = EXCLUDED.error, updated_at = EXCLUDED.updated_at
WHERE r.state <> 'submitted'
RETURNING r.key, r.xmax = 0
"""

DELETE_PLACEHOLDERS = "DELETE FROM ledger_runs WHERE target_id = %s AND key = ANY(%s::text[])"

# One primary-key probe per key: the OFFSET 0 keeps the lateral subquery from being flattened into a join.
LOOKUP = """
SELECT r.* FROM unnest(%(keys)s::text[]) AS v (key)
CROSS JOIN LATERAL (
    SELECT {columns} FROM ledger_runs WHERE target_id = %(target)s AND key = v.key OFFSET 0
) AS r
"""

UPSERT_ADOPTED = """
INSERT INTO ledger_runs AS r (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
SELECT %(target)s, v.key, v.digest, v.run_id, v.manifest, v.file, 'submitted', NULL, %(now)s, %(now)s
FROM unnest(%(keys)s::text[], %(digests)s::text[], %(run_ids)s::text[], %(manifests)s::text[], %(files)s::text[])
    AS v (key, digest, run_id, manifest, file)
ORDER BY v.key COLLATE "C"
ON CONFLICT (target_id, key) DO UPDATE SET
    digest = EXCLUDED.digest, run_id = EXCLUDED.run_id, manifest = EXCLUDED.manifest, file = EXCLUDED.file,
    state = 'submitted', error = NULL, updated_at = EXCLUDED.updated_at
WHERE r.state <> 'submitted' OR r.run_id = EXCLUDED.run_id
RETURNING r.key
"""

UPSERT_IMPORTED = """
INSERT INTO ledger_runs AS r (target_id, key, digest, run_id, manifest, file, state, error, created_at, updated_at)
SELECT * FROM unnest(
    %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::timestamptz[], %s::timestamptz[])
ON CONFLICT (target_id, key) DO UPDATE SET
    digest = EXCLUDED.digest, run_id = EXCLUDED.run_id, manifest = EXCLUDED.manifest, file = EXCLUDED.file,
    state = EXCLUDED.state, error = EXCLUDED.error, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at
WHERE r.state <> 'submitted' OR (EXCLUDED.state = 'submitted' AND EXCLUDED.run_id = r.run_id)
RETURNING r.target_id, r.key
"""

HOLDER = """
SELECT h.host, h.pid, h.since FROM ledger_lock_holders h
WHERE h.lock_key = %(key)s AND EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.pid = h.backend_pid AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid::bigint = %(classid)s AND l.objid::bigint = %(objid)s)
"""

UPSERT_REPLACING = replacing(UPSERT_PENDING)


@functools.lru_cache(maxsize=4)
def lookup_sql(columns: str) -> str:
    return LOOKUP.format(columns=columns)


def _changed(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], target_id: int) -> int:
    """Run an upsert-as-update (see UPDATE_SUBMITTED); returns how many rows it changed. Keys not in the ledger
    were inserted as placeholders: they are deleted again (and are then found missing)."""
    changed = 0
    missing: list[str] = []
    for key, inserted in conn.execute(sql, params).fetchall():
        if inserted:
            missing.append(key)
        else:
            changed += 1
    if missing:
        conn.execute(DELETE_PLACEHOLDERS, (target_id, text_array(sorted(missing))))
    return changed


def _same(moment: datetime) -> datetime:
    return moment


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class PostgresDialect(Dialect["psycopg.Connection[Any]"]):
    param = "%s"
    batch_size = None  # one array per column: a whole call is one statement, its row locks taken in key order
    version_table_ddl = (
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
    )
    version_table_exists = f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL"
    pin_plans = PIN_PLANS

    def any_of(self, column: str) -> str:
        return f"{column} = ANY(%s::text[])"

    list_param = staticmethod(text_array)
    to_db_time = staticmethod(_same)
    from_db_time = staticmethod(_utc)
    applied_at = staticmethod(_same)

    def lookup(self, columns: str, target_id: int, keys: Sequence[str]) -> tuple[str, Any]:
        return lookup_sql(columns), {"keys": text_array(keys), "target": target_id}

    def insert_pending(
        self,
        conn: psycopg.Connection[Any],
        target_id: int,
        rows: Sequence[PendingRow],
        now: Any,
        replace_submitted: bool,
    ) -> Iterable[str]:
        params = {
            "target": target_id,
            "now": now,
            "keys": text_array([r.key for r in rows]),
            "digests": text_array([r.digest for r in rows]),
            "manifests": text_array([r.manifest for r in rows]),
            "files": text_array([r.file for r in rows]),
        }
        sql = UPSERT_REPLACING if replace_submitted else UPSERT_PENDING
        return [key for (key,) in conn.execute(sql, params).fetchall()]

    def update_submitted(
        self, conn: psycopg.Connection[Any], target_id: int, pairs: Sequence[tuple[str, str]], now: Any
    ) -> int:
        params = {
            "target": target_id,
            "now": now,
            "keys": text_array([key for key, _ in pairs]),
            "run_ids": text_array([run_id for _, run_id in pairs]),
        }
        return _changed(conn, UPDATE_SUBMITTED, params, target_id)

    def update_outcome(
        self, conn: psycopg.Connection[Any], target_id: int, keys: Sequence[str], state: str, error: str, now: Any
    ) -> int:
        params = {"state": state, "error": error, "now": now, "target": target_id, "keys": text_array(keys)}
        return _changed(conn, UPDATE_OUTCOME, params, target_id)

    def upsert_adopted(
        self, conn: psycopg.Connection[Any], target_id: int, rows: Sequence[AdoptedRow], now: Any
    ) -> int:
        params = {
            "target": target_id,
            "now": now,
            "keys": text_array([r.key for r in rows]),
            "digests": text_array([r.digest for r in rows]),
            "run_ids": text_array([r.run_id for r in rows]),
            "manifests": text_array([r.manifest for r in rows]),
            "files": text_array([r.file for r in rows]),
        }
        return len(conn.execute(UPSERT_ADOPTED, params).fetchall())

    def upsert_imported(self, conn: psycopg.Connection[Any], rows: Sequence[tuple[int, LedgerEntry]]) -> int:
        columns: list[list[Any]] = [[] for _ in range(10)]
        for target_id, e in rows:
            values = (target_id, e.key, e.digest, e.run_id, e.manifest, e.file, e.state, e.error)
            for column, value in zip(columns, (*values, e.created_at, e.updated_at), strict=True):
                column.append(value)
        return len(conn.execute(UPSERT_IMPORTED, columns).fetchall())


DIALECT = PostgresDialect()
