"""The embedded ledger: one SQLite file in WAL mode; pending rows are synced (they survive power loss), outcomes
are not waited for (see _write). Per-target locks are flocks (filelock).

Only the connection, its transactions and durability, opening (WAL, migrations; read-only, without either) and
locking are here: what the calls do is `sql.SqlLedger`'s, the SQLite statements are `sqlite_sql`'s, and the
checks of the file and the wording of SQLite's errors `sqlite_file`'s.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.filelock import flock_target
from hatchet_manifest.ledger.migrations import SQLITE, VERSION_TABLE, Migration
from hatchet_manifest.ledger.sql import SqlLedger
from hatchet_manifest.ledger.sqlite_file import BUSY_TIMEOUT_SECONDS, CANTOPEN, READONLY, check_file, describe, shown
from hatchet_manifest.ledger.sqlite_sql import DIALECT
from hatchet_manifest.ledger.values import Clock, NoLedgerError, Target, some, utc_now

R = TypeVar("R")


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    """A connection opening the file as `mode` says (ro, rw: never creating it, rwc), not as a name SQLite
    reads specially (":memory:", "", "file:..."): always a URI naming the path."""
    uri = f"file:{quote(os.fspath(path))}?mode={mode}"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS)


class SqliteLedger(SqlLedger[sqlite3.Connection]):
    """The ledger in one SQLite file; per-target locks are flocks on files in `<db>-locks/` beside it.

    `create`: a missing file is created (in an existing directory; `make_dir` creates the directory too, for the
    state dir's ledger); otherwise it is a NoLedgerError. `readonly`: opened read-only, nothing written."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        create: bool = True,
        readonly: bool = False,
        make_dir: bool = False,
        schema: tuple[Migration, ...] = SQLITE,
    ) -> None:
        super().__init__(shown(path), clock, DIALECT)
        self.path = path
        self.readonly = readonly
        self.lock_dir = path.with_name(path.name + "-locks")
        exists = check_file(path, must_exist=readonly or not create, make_dir=make_dir)
        try:
            self._conn = _connect(path, "ro" if readonly else "rw" if exists else "rwc")
        except sqlite3.Error as exc:
            raise LedgerError(describe(exc, path)) from None
        try:
            with self._guard():
                self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                if readonly:
                    self._open_readonly(schema)
                else:
                    self._conn.execute("PRAGMA synchronous = FULL")
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
            raise LedgerError(describe(exc, self.path)) from None

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

    def _tables(self) -> list[str]:
        rows = self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
        return sorted(name for (name,) in rows)

    def _refuse_foreign(self, tables: list[str]) -> None:
        """Another program's database (the engine's, say) is not turned into a ledger, nor switched to WAL."""
        if tables and VERSION_TABLE not in tables:
            raise LedgerError(
                f"the SQLite database {self.location} is not a hatchet-manifest ledger: it holds other tables "
                f"({some(tables, 5)}); give the path of a ledger, or of a file that does not exist yet"
            )

    def _open_readonly(self, schema: tuple[Migration, ...]) -> None:
        """Read-only: the schema must be there and current. In a directory that cannot be written, without a
        -wal file (nothing uncheckpointed, no writer), the file is read as immutable (SQLite cannot make -shm)."""
        try:
            tables = self._tables()
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            wal = Path(f"{self.path}-wal")
            if code not in (READONLY, CANTOPEN) or (wal.exists() and wal.stat().st_size > 0):
                raise
            self._conn.close()
            self._conn = sqlite3.connect(
                f"file:{quote(os.fspath(self.path))}?mode=ro&immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            tables = self._tables()
        self._conn.execute("PRAGMA query_only = ON")
        self._refuse_foreign(tables)
        if VERSION_TABLE not in tables:
            raise NoLedgerError(f"no ledger at {self.location} (an empty SQLite database)")
        self._check_schema(self._conn, schema)

    def _set_up(self, schema: tuple[Migration, ...]) -> None:
        """WAL mode and migrations. Processes opening a new file at once can deadlock on its first switch to WAL,
        which SQLite reports as "database is locked" at once, without waiting: try again until the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                self._refuse_foreign(self._tables())
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise LedgerError(
                        f"the ledger {self.location} cannot use write-ahead logging (journal mode {mode})"
                    )
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
