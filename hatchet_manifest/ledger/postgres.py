"""The shared ledger: PostgreSQL through psycopg 3, for teams and ephemeral CI runners.

Every write is one transaction (durable on COMMIT with the server's default synchronous_commit). Races between
processes are settled by the database itself: `record_pending` is one INSERT ... ON CONFLICT DO UPDATE ... WHERE
the row is failed or unknown, so of two processes sending the same key exactly one gets it, lock or no lock.
Target locks are session advisory locks on a dedicated connection: they die with the session, so a killed apply
never leaves a stale lock.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import migrations
from hatchet_manifest.ledger.base import (
    AdoptedRow,
    Clock,
    KeyTakenError,
    Ledger,
    LedgerEntry,
    LedgerLockedError,
    LockHolder,
    PendingRow,
    RunState,
    StateRow,
    Target,
    TransitionError,
    ensure_unique,
    refusals,
    replacing,
    utc_now,
)
from hatchet_manifest.ledger.postgres_sql import (
    COLUMNS,
    DELETE_PLACEHOLDERS,
    HOLDER,
    LOOKUP,
    PIN_PLANS,
    UPDATE_OUTCOME,
    UPDATE_SUBMITTED,
    UPSERT_ADOPTED,
    UPSERT_IMPORTED,
    UPSERT_PENDING,
    text_array,
)
from hatchet_manifest.ledger.url import redact_url

UPSERT_REPLACING = replacing(UPSERT_PENDING)

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - exercised only where psycopg is missing
    psycopg = None  # type: ignore[assignment]

R = TypeVar("R")

APPLICATION = "hatchet-manifest"
LOCK_POLL_SECONDS = 0.1
RETRIES = 5  # a deadlock or serialization failure rolls back the whole call; it is then safe to run it again


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


MIGRATION_LOCK = _hash64("hatchet-manifest ledger migrations")


def lock_key(target: Target) -> int:
    """The advisory lock key of a target (bigint space; a collision would only serialise two targets)."""
    return _hash64("hatchet-manifest ledger lock\n" + target.id)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    key, digest, run_id, manifest, file, state, error, created, updated = row
    return LedgerEntry(key, digest, run_id, manifest, file, cast(RunState, state), error, _utc(created), _utc(updated))


class PostgresLedger(Ledger):
    """The ledger in a PostgreSQL database (the tables of migrations.POSTGRES, in the session's search_path)."""

    def __init__(
        self, url: str, *, clock: Clock = utc_now, schema: tuple[migrations.Migration, ...] = migrations.POSTGRES
    ) -> None:
        super().__init__(redact_url(url), clock)
        if psycopg is None:
            raise LedgerError(
                "a PostgreSQL ledger needs psycopg 3, which is not installed: pip install 'psycopg[binary]>=3.2'"
            )
        self._url = url  # holds the password: never shown, see self.location
        try:
            self._password = unquote(urlsplit(url).password or "")
        except ValueError:
            self._password = ""
        self._target_ids: dict[Target, int] = {}
        self._conn = self._connect(APPLICATION)
        try:
            self._migrate(schema)
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _scrub(self, message: str) -> str:
        return message.replace(self._password, "***") if self._password else message

    def _connect(self, application: str) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._url, autocommit=True, application_name=application)
        except (psycopg.Error, ValueError) as exc:
            raise LedgerError(f"cannot connect to the ledger {self.location}: {self._scrub(str(exc))}") from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
        except psycopg.Error as exc:
            conn.close()
            raise LedgerError(f"ledger {self.location}: {self._scrub(str(exc))}") from None
        return conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise LedgerError(f"ledger {self.location}: {self._scrub(str(exc)).strip()}") from None

    def _session(self) -> psycopg.Connection[Any]:
        """The main connection, opened again if the server dropped it between two calls."""
        self._check_open()
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect(APPLICATION)
        return self._conn

    def _call(self, body: Callable[[psycopg.Connection[Any]], R], *, write: bool = True, probe: bool = False) -> R:
        """Run `body` in one transaction. Again, from scratch, after a deadlock or serialization failure (rolled
        back, so safe); a read also after finding its session dead. A write whose session died is not retried: its
        COMMIT may have happened, and the caller must know."""
        with self._mutex, self._guard():
            for attempt in range(RETRIES):
                conn = self._session()
                try:
                    with conn.transaction():
                        if probe:
                            conn.execute(PIN_PLANS)
                        return body(conn)
                except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                    if not write or attempt == RETRIES - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1))
                except psycopg.OperationalError:
                    if write or not conn.broken or attempt == RETRIES - 1:
                        raise
            raise AssertionError("unreachable")

    def _migrate(self, schema: tuple[migrations.Migration, ...]) -> None:
        def body(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {migrations.VERSION_TABLE} "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
            )
            row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {migrations.VERSION_TABLE}").fetchone()
            current = int(row[0]) if row else 0
            for version, statements in migrations.pending_migrations(current, schema, self.location):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {migrations.VERSION_TABLE} (version, applied_at) VALUES (%s, %s)",
                    (version, self._now()),
                )

        self._call(body)

    def schema_version(self) -> int:
        def body(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(f"SELECT max(version) FROM {migrations.VERSION_TABLE}").fetchone()
            return int(row[0]) if row else 0

        return self._call(body, write=False)

    def _known_target_id(self, conn: psycopg.Connection[Any], target: Target) -> int | None:
        cached = self._target_ids.get(target)
        if cached is not None:
            return cached
        row = conn.execute(
            "SELECT id FROM ledger_targets WHERE tenant_id = %s AND address = %s", (target.tenant_id, target.address)
        ).fetchone()
        if row is None:
            return None
        self._target_ids[target] = int(row[0])
        return int(row[0])

    @staticmethod
    def _target_id_in(conn: psycopg.Connection[Any], target: Target) -> int:
        """The target's id, created inside the caller's transaction (not cached: it may still roll back)."""
        row = conn.execute(
            "INSERT INTO ledger_targets (tenant_id, address) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING id",
            (target.tenant_id, target.address),
        ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT id FROM ledger_targets WHERE tenant_id = %s AND address = %s",
                (target.tenant_id, target.address),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def _target_id(self, target: Target) -> int:
        known = self._call(lambda conn: self._known_target_id(conn, target), write=False)
        if known is not None:
            return known
        target_id = self._call(lambda conn: self._target_id_in(conn, target))
        self._target_ids[target] = target_id
        return target_id

    @staticmethod
    def _changed(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], target_id: int) -> set[str]:
        """Run an upsert-as-update (see postgres_sql); returns the keys changed. Keys not in the ledger were
        inserted as placeholders: they are deleted again (and `_current` then does not find them)."""
        changed: set[str] = set()
        missing: set[str] = set()
        for key, inserted in conn.execute(sql, params).fetchall():
            (missing if inserted else changed).add(key)
        if missing:
            conn.execute(DELETE_PLACEHOLDERS, (target_id, text_array(sorted(missing))))
        return changed

    @staticmethod
    def _current(conn: psycopg.Connection[Any], target_id: int, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        rows = conn.execute(
            "SELECT key, state, run_id FROM ledger_runs WHERE target_id = %s AND key = ANY(%s::text[])",
            (target_id, text_array(keys)),
        )
        return {key: (state, run_id) for key, state, run_id in rows}

    # -- locking and reading -------------------------------------------------------------------------------

    def lock(self, target: Target, *, wait: float = 0.0) -> AbstractContextManager[None]:
        return self._advisory_lock(target, wait)

    @contextmanager
    def _advisory_lock(self, target: Target, wait: float) -> Iterator[None]:
        key = lock_key(target)
        self._check_open()
        conn = self._connect(f"{APPLICATION} lock")
        try:
            with self._guard():
                deadline = time.monotonic() + max(wait, 0.0)
                while True:
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                    if row and row[0]:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise LedgerLockedError(target, self._holder(conn, key), wait)
                    time.sleep(min(LOCK_POLL_SECONDS, remaining))
                conn.execute(
                    "INSERT INTO ledger_lock_holders (lock_key, target, host, pid, since, backend_pid) "
                    "VALUES (%s, %s, %s, %s, %s, pg_backend_pid()) ON CONFLICT (lock_key) DO UPDATE SET "
                    "target = EXCLUDED.target, host = EXCLUDED.host, pid = EXCLUDED.pid, since = EXCLUDED.since, "
                    "backend_pid = EXCLUDED.backend_pid",
                    (key, target.id, socket.gethostname(), os.getpid(), self._now()),
                )
            yield
            try:
                conn.execute(
                    "DELETE FROM ledger_lock_holders WHERE lock_key = %s AND backend_pid = pg_backend_pid()", (key,)
                )
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg.OperationalError as exc:
                # The session died (server restart, terminated backend, network): its locks died with it, so there
                # is nothing left to release. Anything else is a real error.
                if not conn.broken:
                    raise LedgerError(f"ledger {self.location}: {self._scrub(str(exc)).strip()}") from None
        finally:
            conn.close()  # ends the session, which releases the lock whatever happened above

    @staticmethod
    def _holder(conn: psycopg.Connection[Any], key: int) -> LockHolder | None:
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        row = conn.execute(HOLDER, {"key": key, "classid": unsigned >> 32, "objid": unsigned & 0xFFFF_FFFF}).fetchone()
        if row is None:
            return None
        return LockHolder(host=row[0], pid=int(row[1]), since=_utc(row[2]))

    def targets(self) -> list[Target]:
        def body(conn: psycopg.Connection[Any]) -> list[Target]:
            rows = conn.execute("SELECT tenant_id, address FROM ledger_targets ORDER BY tenant_id, address")
            return [Target(tenant, address) for tenant, address in rows]

        return self._call(body, write=False)

    def lookup(self, target: Target, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        def body(conn: psycopg.Connection[Any]) -> dict[str, LedgerEntry]:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not keys:
                return {}
            rows = conn.execute(LOOKUP.format(columns=COLUMNS), {"keys": text_array(keys), "target": target_id})
            return {entry.key: entry for entry in map(_entry, rows.fetchall())}

        return self._call(body, write=False)

    def _state_rows(self, target: Target, keys: Sequence[str]) -> dict[str, StateRow]:
        def body(conn: psycopg.Connection[Any]) -> dict[str, StateRow]:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not keys:
                return {}
            sql = LOOKUP.format(columns="key, digest, run_id, state")
            rows = conn.execute(sql, {"keys": text_array(keys), "target": target_id}).fetchall()
            return {key: (digest, run_id, state) for key, digest, run_id, state in rows}

        return self._call(body, write=False)

    def _page(
        self,
        target: Target,
        after: str | None,
        manifests: list[str] | None,
        limit: int,
        states: list[str] | None = None,
    ) -> list[LedgerEntry]:
        def body(conn: psycopg.Connection[Any]) -> list[LedgerEntry]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return []
            sql = f"SELECT {COLUMNS} FROM ledger_runs WHERE target_id = %s"
            params: list[Any] = [target_id]
            if after is not None:
                sql += " AND key > %s"
                params.append(after)
            if manifests is not None:
                sql += " AND manifest = ANY(%s::text[])"
                params.append(text_array(manifests))
            if states is not None:
                sql += " AND state = ANY(%s::text[])"
                params.append(text_array(states))
            sql += " ORDER BY key LIMIT %s"
            params.append(limit)
            return [_entry(row) for row in conn.execute(sql, params)]

        return self._call(body, write=False, probe=True)

    def count(self, target: Target) -> int:
        def body(conn: psycopg.Connection[Any]) -> int:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return 0
            row = conn.execute("SELECT count(*) FROM ledger_runs WHERE target_id = %s", (target_id,)).fetchone()
            return int(row[0]) if row else 0

        return self._call(body, write=False)

    # -- writing ---------------------------------------------------------------------------------------------

    def record_pending(self, target: Target, rows: Sequence[PendingRow], *, replace_submitted: bool = False) -> None:
        keys = ensure_unique((row.key for row in rows), "record_pending")
        if not keys:
            return
        target_id = self._target_id(target)
        params = {
            "target": target_id,
            "now": self._now(),
            "keys": text_array(keys),
            "digests": text_array([r.digest for r in rows]),
            "manifests": text_array([r.manifest for r in rows]),
            "files": text_array([r.file for r in rows]),
        }

        def body(conn: psycopg.Connection[Any]) -> None:
            sql = UPSERT_REPLACING if replace_submitted else UPSERT_PENDING
            won = {key for (key,) in conn.execute(sql, params).fetchall()}
            if len(won) != len(keys):
                raise KeyTakenError(target, [key for key in keys if key not in won])  # rolls the insert back

        self._call(body)

    def record_submitted(self, target: Target, pairs: Sequence[tuple[str, str]]) -> None:
        keys = ensure_unique((key for key, _ in pairs), "record_submitted")
        if not keys:
            return
        now = self._now()

        def body(conn: psycopg.Connection[Any]) -> dict[str, str]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return {key: "not in the ledger" for key in keys}
            params = {
                "target": target_id,
                "now": now,
                "keys": text_array(keys),
                "run_ids": text_array([run_id for _, run_id in pairs]),
            }
            done = self._changed(conn, UPDATE_SUBMITTED, params, target_id)
            if len(done) == len(keys):
                return {}
            current = self._current(conn, target_id, [key for key in keys if key not in done])
            return refusals(((key, run_id) for key, run_id in pairs if key not in done), current)

        problems = self._call(body)
        if problems:
            raise TransitionError(target, "record as submitted", problems)

    def _record_outcome(self, target: Target, keys: Sequence[str], state: RunState, error: str) -> None:
        listed = ensure_unique(keys, f"record_{state}")
        if not listed:
            return
        now = self._now()

        def body(conn: psycopg.Connection[Any]) -> dict[str, str]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return {key: "not in the ledger" for key in listed}
            params = {"state": state, "error": error, "now": now, "target": target_id, "keys": text_array(listed)}
            done = self._changed(conn, UPDATE_OUTCOME, params, target_id)
            if len(done) == len(listed):
                return {}
            current = self._current(conn, target_id, [key for key in listed if key not in done])
            return refusals(((key, None) for key in listed if key not in done), current)

        problems = self._call(body)
        if problems:
            raise TransitionError(target, f"record as {state}", problems)

    def adopt(self, target: Target, rows: Sequence[AdoptedRow]) -> None:
        keys = ensure_unique((row.key for row in rows), "adopt")
        if not keys:
            return
        target_id = self._target_id(target)
        params = {
            "target": target_id,
            "now": self._now(),
            "keys": text_array(keys),
            "digests": text_array([r.digest for r in rows]),
            "run_ids": text_array([r.run_id for r in rows]),
            "manifests": text_array([r.manifest for r in rows]),
            "files": text_array([r.file for r in rows]),
        }

        def body(conn: psycopg.Connection[Any]) -> dict[str, str]:
            done = {row[0] for row in conn.execute(UPSERT_ADOPTED, params)}
            if len(done) == len(keys):
                return {}
            current = self._current(conn, target_id, [key for key in keys if key not in done])
            return {
                r.key: f"already submitted as run {current[r.key][1]}; the engine also has run {r.run_id}"
                for r in rows
                if r.key not in done
            }

        problems = self._call(body)
        if problems:
            raise TransitionError(target, "adopt", problems)

    def forget(self, target: Target, keys: Sequence[str]) -> int:
        listed = ensure_unique(keys, "forget")

        def body(conn: psycopg.Connection[Any]) -> int:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not listed:
                return 0
            cur = conn.execute(
                "DELETE FROM ledger_runs WHERE target_id = %s AND key = ANY(%s::text[])",
                (target_id, text_array(listed)),
            )
            return cur.rowcount

        return self._call(body, probe=True)

    # -- moving ledgers ----------------------------------------------------------------------------------------

    @contextmanager
    def _import_transaction(self) -> Iterator[None]:
        with self._mutex, self._guard():
            conn = self._session()
            with conn.transaction():
                yield
        self._target_ids.clear()

    def _import_chunk(self, rows: list[tuple[Target, LedgerEntry]]) -> None:
        conn = self._conn
        with self._guard():
            ids: dict[Target, int] = {}
            for target, _ in rows:
                if target not in ids:
                    ids[target] = self._target_id_in(conn, target)
            columns: list[list[Any]] = [[] for _ in range(10)]
            for target, e in rows:
                values = (ids[target], e.key, e.digest, e.run_id, e.manifest, e.file, e.state, e.error)
                for column, value in zip(columns, (*values, e.created_at, e.updated_at), strict=True):
                    column.append(value)
            done = {(row[0], row[1]) for row in conn.execute(UPSERT_IMPORTED, columns)}
            if len(done) == len(rows):
                return
            problems = []
            for target, e in rows:
                if (ids[target], e.key) in done:
                    continue
                _, run_id = self._current(conn, ids[target], [e.key])[e.key]
                problems.append(
                    f"{target.id} {e.key}: submitted as run {run_id} in the ledger; the import has it {e.state}"
                    + (f" as run {e.run_id}" if e.run_id else "")
                )
        raise LedgerError(
            f"import refused, nothing imported: {len(problems)} row(s) would change submitted runs: "
            + "; ".join(problems[:10])
        )

    def _close(self) -> None:
        self._conn.close()
