"""The shared ledger: PostgreSQL through psycopg 3, for teams and ephemeral CI runners.

Every write is one transaction (durable on COMMIT with the server's default synchronous_commit). Races between
processes are settled by the database itself: `record_pending` is one INSERT ... ON CONFLICT DO UPDATE ... WHERE
the row is failed or unknown, so of two processes sending the same key exactly one gets it, lock or no lock.
Target locks are session advisory locks on a dedicated connection: they die with the session, so a killed apply
never leaves a stale lock.

Only connections (the URL checked first, a bounded connect timeout, reopened when dropped, errors scrubbed of the
URL's secrets), transactions and their retries, migrations under an advisory lock (or, read-only, none), and
target locks are here: what the calls do is `sql.SqlLedger`'s, and the
PostgreSQL statements are `postgres_sql`'s.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.migrations import POSTGRES, Migration
from hatchet_manifest.ledger.postgres_sql import DIALECT, HOLDER
from hatchet_manifest.ledger.redact import Secrets, redact_url
from hatchet_manifest.ledger.sql import SqlLedger
from hatchet_manifest.ledger.values import Clock, LedgerLockedError, LockHolder, NoLedgerError, Target, utc_now

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # pragma: no cover - exercised only where psycopg is missing
    psycopg = None  # type: ignore[assignment]

R = TypeVar("R")

APPLICATION = "hatchet-manifest"
# Seconds to wait for a server that does not answer, unless the URL's connect_timeout or PGCONNECT_TIMEOUT says
# otherwise (psycopg's own default is over two minutes).
CONNECT_TIMEOUT_SECONDS = 10
LOCK_POLL_SECONDS = 0.1
RETRIES = 5  # a deadlock or serialization failure rolls back the whole call; it is then safe to run it again


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


MIGRATION_LOCK = _hash64("hatchet-manifest ledger migrations")


def lock_key(target: Target) -> int:
    """The advisory lock key of a target (bigint space; a collision would only serialise two targets)."""
    return _hash64("hatchet-manifest ledger lock\n" + target.id)


class PostgresLedger(SqlLedger["psycopg.Connection[Any]"]):
    """The ledger in a PostgreSQL database (the tables of migrations.POSTGRES, in the session's search_path).

    `create=False`: a database without the ledger's tables is a NoLedgerError (nothing is created). `readonly`:
    every transaction is read-only, nothing is migrated, and the schema must be this version's."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = utc_now,
        create: bool = True,
        readonly: bool = False,
        schema: tuple[Migration, ...] = POSTGRES,
    ) -> None:
        super().__init__(redact_url(url), clock, DIALECT)
        if psycopg is None:
            raise LedgerError(
                "a PostgreSQL ledger needs psycopg 3, which is not installed: pip install 'psycopg[binary]>=3.2'"
            )
        self._url = url  # holds the password: never shown, see self.location
        self._secrets = Secrets(url)
        self.readonly = readonly
        self._options = self._check_url()
        self._conn = self._connect(APPLICATION)
        try:
            if readonly or not create:
                self._require_ledger(schema, readonly)
            if not readonly:
                self._migrate(schema)
        except BaseException:
            self._conn.close()
            raise

    # -- connections and transactions --------------------------------------------------------------------------

    def _scrub(self, message: str) -> str:
        return self._secrets.scrub(message)

    def _check_url(self) -> dict[str, Any]:
        """The URL parsed by libpq before any connection (a clear error for one it refuses); the connect options
        to add: a bounded connect timeout unless the URL or PGCONNECT_TIMEOUT sets one."""
        try:
            params = conninfo_to_dict(self._url)
        except (psycopg.Error, ValueError) as exc:
            raise LedgerError(f"bad PostgreSQL ledger URL {self.location}: {self._scrub(str(exc))}") from None
        if params.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT"):
            return {}
        return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}

    def _connect(self, application: str) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._url, autocommit=True, application_name=application, **self._options)
        except (psycopg.Error, ValueError) as exc:
            reason = self._scrub(str(exc))
            if "timeout expired" in reason and self._options:
                reason += (
                    f" (no answer within {CONNECT_TIMEOUT_SECONDS}s; connect_timeout=SECONDS in the URL waits longer)"
                )
            raise LedgerError(f"cannot connect to the ledger {self.location}: {reason}") from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            conn.close()
            raise LedgerError(f"ledger {self.location}: {self._scrub(str(exc))}") from None
        return conn

    def _require_ledger(self, schema: tuple[Migration, ...], current: bool) -> None:
        """NoLedgerError unless the database holds a ledger; with `current`, of this version's schema."""

        def body(conn: psycopg.Connection[Any]) -> bool:
            found = conn.execute(DIALECT.version_table_exists).fetchone()  # without creating anything
            if not (found and found[0]):
                return False
            if current:
                self._check_schema(conn, schema)
            return True

        if not self._run(body, write=False):
            raise NoLedgerError(
                f"no ledger in {self.location}: the database holds no ledger tables (nothing was recorded there yet)"
            )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise LedgerError(f"ledger {self.location}: {self._scrub(str(exc))}") from None

    def _session(self) -> psycopg.Connection[Any]:
        """The main connection, opened again if the server dropped it between two calls."""
        self._check_open()
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect(APPLICATION)
        return self._conn

    def _run(self, body: Callable[[psycopg.Connection[Any]], R], *, write: bool = True, durable: bool = True) -> R:
        """Run `body` in one transaction. Again, from scratch, after a deadlock or serialization failure (rolled
        back, so safe); a read also after finding its session dead. A write whose session died is not retried: its
        COMMIT may have happened, and the caller must know. Every commit is durable (`durable` changes nothing)."""
        with self._mutex, self._guard():
            for attempt in range(RETRIES):
                conn = self._session()
                try:
                    with conn.transaction():
                        return body(conn)
                except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                    if not write or attempt == RETRIES - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1))
                except psycopg.OperationalError:
                    if write or not conn.broken or attempt == RETRIES - 1:
                        raise
            raise AssertionError("unreachable")

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._mutex, self._guard():
            conn = self._session()
            with conn.transaction():
                yield conn

    def _migrate(self, schema: tuple[Migration, ...]) -> None:
        def body(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))  # one process migrates at a time
            self._apply_migrations(conn, schema)

        self._run(body)

    # -- locking and closing -----------------------------------------------------------------------------------

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
                    raise LedgerError(f"ledger {self.location}: {self._scrub(str(exc))}") from None
        finally:
            conn.close()  # ends the session, which releases the lock whatever happened above

    @staticmethod
    def _holder(conn: psycopg.Connection[Any], key: int) -> LockHolder | None:
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        row = conn.execute(HOLDER, {"key": key, "classid": unsigned >> 32, "objid": unsigned & 0xFFFF_FFFF}).fetchone()
        if row is None:
            return None
        return LockHolder(host=row[0], pid=int(row[1]), since=DIALECT.from_db_time(row[2]))

    def _close(self) -> None:
        self._conn.close()
