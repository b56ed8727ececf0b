"""The embedded ledger: one SQLite file in WAL mode; pending rows are synced (they survive power loss), outcomes
are not waited for (see _write). Per-target locks are flocks (filelock).

Only the connection, its transactions and durability, opening (WAL, migrations) and locking are here: what the
calls do is `sql.SqlLedger`'s, and the SQLite statements are `sqlite_sql`'s.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.filelock import flock_target
from hatchet_manifest.ledger.migrations import SQLITE, Migration
from hatchet_manifest.ledger.sql import SqlLedger
from hatchet_manifest.ledger.sqlite_sql import DIALECT
from hatchet_manifest.ledger.values import Clock, Target, utc_now

R = TypeVar("R")

BUSY_TIMEOUT_SECONDS = 60.0


class SqliteLedger(SqlLedger[sqlite3.Connection]):
    """The ledger in one SQLite file; per-target locks are flocks on files in `<db>-locks/` beside it."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        create: bool = True,
        schema: tuple[Migration, ...] = SQLITE,
    ) -> None:
        super().__init__(str(path), clock, DIALECT)
        self.path = path
        self.lock_dir = path.with_name(path.name + "-locks")
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

    # -- transactions ------------------------------------------------------------------------------------------

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

    def _run(self, body: Callable[[sqlite3.Connection], R], *, write: bool = True, durable: bool = True) -> R:
        with self._write(sync=durable) if write else self._read() as conn:
            return body(conn)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._write()

    # -- opening -----------------------------------------------------------------------------------------------

    def _set_up(self, schema: tuple[Migration, ...]) -> None:
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

    def _migrate(self, schema: tuple[Migration, ...]) -> None:
        """Not through _write: _set_up must see a "locked" error as it is, to try again."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # the write lock serialises processes migrating at once
        try:
            self._apply_migrations(conn, schema)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    # -- locking and closing -----------------------------------------------------------------------------------

    def lock(self, target: Target, *, wait: float = 0.0) -> AbstractContextManager[None]:
        return flock_target(self.lock_dir, target, wait, self._now)

    def _close(self) -> None:
        self._conn.close()
