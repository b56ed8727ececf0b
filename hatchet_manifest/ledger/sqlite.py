"""The embedded ledger: one SQLite file in WAL mode; pending rows are synced (they survive power loss), outcomes are not waited for (see _write)."""

from __future__ import annotations

import functools
import itertools
import json
import operator
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import migrations
from hatchet_manifest.ledger.base import (
    AdoptedRow,
    Clock,
    KeyTakenError,
    Ledger,
    LedgerEntry,
    PendingRow,
    RunState,
    StateRow,
    Target,
    TransitionError,
    chunked,
    ensure_unique,
    refusals,
    replacing,
    utc_now,
)
from hatchet_manifest.ledger.filelock import flock_target

BUSY_TIMEOUT_SECONDS = 60.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

_FIRST = operator.itemgetter(0)
COLUMNS = "key, digest, run_id, manifest, file, state, error, created_at, updated_at"
KEYS_IN = "key IN (SELECT value FROM json_each(?))"

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


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    key, digest, run_id, manifest, file, state, error, created, updated = row
    return LedgerEntry(
        key, digest, run_id, manifest, file, cast(RunState, state), error, from_micros(created), from_micros(updated)
    )


class SqliteLedger(Ledger):
    """The ledger in one SQLite file; per-target locks are flocks on files in `<db>-locks/` beside it."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        create: bool = True,
        schema: tuple[migrations.Migration, ...] = migrations.SQLITE,
    ) -> None:
        super().__init__(str(path), clock)
        self.path = path
        self.lock_dir = path.with_name(path.name + "-locks")
        self._target_ids: dict[Target, int] = {}
        if not create and not path.is_file():
            raise LedgerError(f"no ledger at {path}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS
            )
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        try:
            with self._guard():
                self._conn.execute("PRAGMA synchronous = FULL")
                self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                self._set_up(schema)
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.location}: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._mutex, self._guard():
            self._check_open()
            yield self._conn

    @contextmanager
    def _write(self, sync: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the database's write lock first, so that the checks
        made inside it hold until COMMIT, whatever other processes do.

        `sync=False` commits without waiting for the disk (synchronous=NORMAL, still safe against a process
        crash): used for outcomes (submitted, failed, unknown), which the next synced commit makes durable and
        which, if a power loss takes them, leave rows pending for reconciliation with the engine. Pending rows,
        the write-ahead record, are always synced before the chunk is sent."""
        with self._mutex, self._guard():
            self._check_open()
            conn = self._conn
            try:  # one try for all of it: an interruption anywhere must not leave a transaction open
                if not sync:
                    conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if not sync:
                    conn.execute("PRAGMA synchronous = FULL")

    def _set_up(self, schema: tuple[migrations.Migration, ...]) -> None:
        """WAL mode and migrations. Processes opening a new file at once can deadlock on its first switch to WAL,
        which SQLite reports as "database is locked" at once, without waiting: try again until the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise LedgerError(f"the ledger {self.path} cannot use write-ahead logging (journal mode {mode})")
                self._migrate(schema)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def _migrate(self, schema: tuple[migrations.Migration, ...]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {migrations.VERSION_TABLE} "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = conn.execute(f"SELECT coalesce(max(version), 0) FROM {migrations.VERSION_TABLE}").fetchone()[0]
            for version, statements in migrations.pending_migrations(current, schema, self.location):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {migrations.VERSION_TABLE} (version, applied_at) VALUES (?, ?)",
                    (version, self._now().isoformat()),
                )
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def schema_version(self) -> int:
        with self._read() as conn:
            return int(conn.execute(f"SELECT max(version) FROM {migrations.VERSION_TABLE}").fetchone()[0])

    def _known_target_id(self, conn: sqlite3.Connection, target: Target) -> int | None:
        cached = self._target_ids.get(target)
        if cached is not None:
            return cached
        row = conn.execute(
            "SELECT id FROM ledger_targets WHERE tenant_id = ? AND address = ?", (target.tenant_id, target.address)
        ).fetchone()
        if row is None:
            return None
        self._target_ids[target] = row[0]
        return cast(int, row[0])

    def _target_id_in(self, conn: sqlite3.Connection, target: Target) -> int:
        """The target's id, created inside the caller's transaction (not cached: it may still roll back)."""
        conn.execute(
            "INSERT INTO ledger_targets (tenant_id, address) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (target.tenant_id, target.address),
        )
        row = conn.execute(
            "SELECT id FROM ledger_targets WHERE tenant_id = ? AND address = ?", (target.tenant_id, target.address)
        ).fetchone()
        return cast(int, row[0])

    def _target_id(self, target: Target) -> int:
        cached = self._target_ids.get(target)  # a target's id never changes: no need to wait for the connection
        if cached is not None:
            return cached
        with self._read() as conn:
            known = self._known_target_id(conn, target)
        if known is not None:
            return known
        with self._write() as conn:
            target_id = self._target_id_in(conn, target)
        self._target_ids[target] = target_id
        return target_id

    @staticmethod
    def _current(conn: sqlite3.Connection, target_id: int, keys: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        rows = conn.execute(
            f"SELECT key, state, run_id FROM ledger_runs WHERE target_id = ? AND {KEYS_IN}",
            (target_id, json.dumps(list(keys))),
        )
        return {key: (state, run_id) for key, state, run_id in rows}

    # -- locking and reading -------------------------------------------------------------------------------

    def lock(self, target: Target, *, wait: float = 0.0) -> AbstractContextManager[None]:
        return flock_target(self.lock_dir, target, wait, self._now)

    def targets(self) -> list[Target]:
        with self._read() as conn:
            rows = conn.execute("SELECT tenant_id, address FROM ledger_targets ORDER BY tenant_id, address")
            return [Target(tenant, address) for tenant, address in rows]

    def lookup(self, target: Target, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        with self._read() as conn:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not keys:
                return {}
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM ledger_runs WHERE target_id = ? AND {KEYS_IN}",
                (target_id, json.dumps(list(keys))),
            )
            return {entry.key: entry for entry in map(_entry, rows)}

    def _state_rows(self, target: Target, keys: Sequence[str]) -> dict[str, StateRow]:
        with self._read() as conn:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not keys:
                return {}
            rows = conn.execute(
                f"SELECT key, digest, run_id, state FROM ledger_runs WHERE target_id = ? AND {KEYS_IN}",
                (target_id, json.dumps(list(keys))),
            )
            return {key: (digest, run_id, state) for key, digest, run_id, state in rows}

    def _page(
        self,
        target: Target,
        after: str | None,
        manifests: list[str] | None,
        limit: int,
        states: list[str] | None = None,
    ) -> list[LedgerEntry]:
        with self._read() as conn:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return []
            sql = f"SELECT {COLUMNS} FROM ledger_runs WHERE target_id = ?"
            params: list[Any] = [target_id]
            if after is not None:
                sql += " AND key > ?"
                params.append(after)
            if manifests is not None:
                sql += " AND manifest IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(manifests))
            if states is not None:
                sql += " AND state IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(states))
            sql += " ORDER BY key LIMIT ?"
            params.append(limit)
            return [_entry(row) for row in conn.execute(sql, params)]

    def count(self, target: Target) -> int:
        with self._read() as conn:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return 0
            return int(conn.execute("SELECT count(*) FROM ledger_runs WHERE target_id = ?", (target_id,)).fetchone()[0])

    # -- writing ---------------------------------------------------------------------------------------------

    def record_pending(self, target: Target, rows: Sequence[PendingRow], *, replace_submitted: bool = False) -> None:
        keys = ensure_unique(map(_FIRST, rows), "record_pending")
        if not keys:
            return
        target_id = self._target_id(target)
        now = to_micros(self._now())
        with self._write() as conn:
            won: set[str] = set()
            for batch in chunked(rows):
                # a PendingRow is (key, digest, manifest, file): its fields are the parameters, in order
                params = [*itertools.chain.from_iterable(batch), target_id, now, now]
                if not replace_submitted and _insert_new(conn, len(batch), params):
                    won.update(map(_FIRST, batch))
                    continue
                sql = with_values(UPSERT_REPLACING if replace_submitted else UPSERT_PENDING, len(batch), 4)
                won.update(key for (key,) in conn.execute(sql, params))
            if len(won) != len(keys):
                raise KeyTakenError(target, [key for key in keys if key not in won])  # rolls the batch back

    def record_submitted(self, target: Target, pairs: Sequence[tuple[str, str]]) -> None:
        keys = ensure_unique((key for key, _ in pairs), "record_submitted")
        if not keys:
            return
        now = to_micros(self._now())
        problems: dict[str, str] = {}
        with self._write(sync=False) as conn:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                problems = {key: "not in the ledger" for key in keys}
            else:
                changed = 0
                for batch in chunked(pairs):
                    sql = with_values(UPDATE_SUBMITTED, len(batch), 2)
                    params = [*itertools.chain.from_iterable(batch), now, target_id]
                    changed += _changes(conn, sql, params)
                if changed != len(keys):
                    problems = refusals(pairs, self._current(conn, target_id, keys))
        if problems:
            raise TransitionError(target, "record as submitted", problems)

    def _record_outcome(self, target: Target, keys: Sequence[str], state: RunState, error: str) -> None:
        listed = ensure_unique(keys, f"record_{state}")
        if not listed:
            return
        now = to_micros(self._now())
        problems: dict[str, str] = {}
        with self._write(sync=False) as conn:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                problems = {key: "not in the ledger" for key in listed}
            else:
                params = [(state, error, now, target_id, key) for key in listed]
                if conn.executemany(UPDATE_OUTCOME, params).rowcount != len(params):
                    problems = refusals(((key, None) for key in listed), self._current(conn, target_id, listed))
        if problems:
            raise TransitionError(target, f"record as {state}", problems)

    def adopt(self, target: Target, rows: Sequence[AdoptedRow]) -> None:
        keys = ensure_unique((row.key for row in rows), "adopt")
        if not keys:
            return
        target_id = self._target_id(target)
        now = to_micros(self._now())
        params = [(target_id, r.key, r.digest, r.run_id, r.manifest, r.file, now, now) for r in rows]
        problems: dict[str, str] = {}
        with self._write() as conn:
            if conn.executemany(UPSERT_ADOPTED, params).rowcount != len(params):
                current = self._current(conn, target_id, keys)
                for row in rows:
                    state, existing = current[row.key]
                    if state == "submitted" and existing != row.run_id:
                        problems[row.key] = f"already submitted as run {existing}; the engine also has run {row.run_id}"
        if problems:
            raise TransitionError(target, "adopt", problems)

    def forget(self, target: Target, keys: Sequence[str]) -> int:
        listed = ensure_unique(keys, "forget")
        with self._write() as conn:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not listed:
                return 0
            return int(
                conn.executemany(
                    "DELETE FROM ledger_runs WHERE target_id = ? AND key = ?", [(target_id, key) for key in listed]
                ).rowcount
            )

    # -- moving ledgers ----------------------------------------------------------------------------------------

    @contextmanager
    def _import_transaction(self) -> Iterator[None]:
        with self._write():
            yield
        self._target_ids.clear()  # ids created by the import are committed now; re-read them lazily

    def _import_chunk(self, rows: list[tuple[Target, LedgerEntry]]) -> None:
        conn = self._conn
        ids: dict[Target, int] = {}
        params = []
        for target, e in rows:
            if target not in ids:
                ids[target] = self._target_id_in(conn, target)
            params.append(
                (
                    ids[target],
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
            )
        if conn.executemany(UPSERT_IMPORTED, params).rowcount == len(params):
            return
        problems: dict[str, str] = {}
        for target, e in rows:
            current = self._current(conn, ids[target], [e.key]).get(e.key)
            if current and current[0] == "submitted" and (e.state, e.run_id) != current:
                problems[f"{target.id} {e.key}"] = (
                    f"submitted as run {current[1]} in the ledger; the import has it {e.state}"
                    + (f" as run {e.run_id}" if e.run_id else "")
                )
        raise LedgerError(
            f"import refused, nothing imported: {len(problems)} row(s) would change submitted runs: "
            + "; ".join(f"{k}: {v}" for k, v in list(problems.items())[:10])
        )

    def _close(self) -> None:
        self._conn.close()
