"""The PostgreSQL ledger's statements, and how key lists travel to them (one text[] literal per column)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

COLUMNS = "key, digest, run_id, manifest, file, state, error, created_at, updated_at"

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
