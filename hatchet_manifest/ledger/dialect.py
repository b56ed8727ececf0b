"""What a SQL dialect gives the shared ledger (`sql.SqlLedger`), and the SQL that both dialects write alike.

A `Dialect` knows how its database spells things: the placeholder, how a list of keys travels as one
parameter, how times are stored, how many rows one statement may take, and the one statement (or executemany)
behind each hot-path write, returning how many rows it changed. It does not decide which statements run, in
which transaction, or what a short count means: that is `SqlLedger`'s, once for both backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from hatchet_manifest.ledger.migrations import VERSION_TABLE
from hatchet_manifest.ledger.values import AdoptedRow, LedgerEntry, PendingRow, RunState

COLUMNS = "key, digest, run_id, manifest, file, state, error, created_at, updated_at"
STATE_COLUMNS = "key, digest, run_id, state"


class Cursor(Protocol):
    """What the shared code reads from a statement (sqlite3 and psycopg cursors both are)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the shared code asks of a connection (sqlite3 and psycopg connections both are)."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...


C = TypeVar("C", bound=Connection)


def replacing(upsert_pending: str) -> str:
    """The pending upsert that may also replace submitted rows."""
    states = "IN ('failed', 'unknown')"
    assert states in upsert_pending
    return upsert_pending.replace(states, "IN ('failed', 'unknown', 'submitted')")


def entry_reader(to_time: Callable[[Any], datetime]) -> Callable[[tuple[Any, ...]], LedgerEntry]:
    """A row of COLUMNS -> LedgerEntry, with the dialect's conversion of stored times."""

    def entry(row: tuple[Any, ...]) -> LedgerEntry:
        key, digest, run_id, manifest, file, state, error, created, updated = row
        return LedgerEntry(
            key, digest, run_id, manifest, file, cast(RunState, state), error, to_time(created), to_time(updated)
        )

    return entry


class Dialect(ABC, Generic[C]):
    """The database-specific half of a SQL ledger; the statements both dialects share are built from it."""

    param: ClassVar[str]  # the positional placeholder: "?" or "%s"
    # Rows per write statement, or None for all of a call in one statement (then sent as one array per column).
    batch_size: ClassVar[int | None]
    version_table_ddl: ClassVar[str]  # CREATE TABLE IF NOT EXISTS for migrations.VERSION_TABLE
    version_table_exists: ClassVar[str]  # one row, one column: true when migrations.VERSION_TABLE exists
    pin_plans: ClassVar[str | None] = None  # run first by reads and deletes that walk a range of keys

    def __init__(self) -> None:
        p = self.param
        self.select_target_id = f"SELECT id FROM ledger_targets WHERE tenant_id = {p} AND address = {p}"
        self.insert_target = (
            f"INSERT INTO ledger_targets (tenant_id, address) VALUES ({p}, {p}) ON CONFLICT DO NOTHING RETURNING id"
        )
        self.select_targets = "SELECT tenant_id, address FROM ledger_targets ORDER BY tenant_id, address"
        self.count_runs = f"SELECT count(*) FROM ledger_runs WHERE target_id = {p}"
        self.select_current = (
            f"SELECT key, state, run_id FROM ledger_runs WHERE target_id = {p} AND {self.any_of('key')}"
        )
        self.delete_keys = f"DELETE FROM ledger_runs WHERE target_id = {p} AND {self.any_of('key')}"
        self.page_start = f"SELECT {COLUMNS} FROM ledger_runs WHERE target_id = {p}"
        self.page_after = f" AND key > {p}"
        self.page_manifests = f" AND {self.any_of('manifest')}"
        self.page_states = f" AND {self.any_of('state')}"
        self.page_end = f" ORDER BY key LIMIT {p}"
        self.manifest_totals = (
            f"SELECT manifest, count(*), min(created_at) FROM ledger_runs WHERE target_id = {p} "
            f"AND state = 'submitted' AND {self.any_of('manifest')} "
            # crons, schedules and events are not runs (their keys' prefixes, apart from every run key's)
            "AND substr(key, 1, 5) <> 'cron:' AND substr(key, 1, 9) <> 'schedule:' AND substr(key, 1, 6) <> 'event:' "
            "GROUP BY manifest"
        )
        self.select_replays = f"SELECT key, attempts FROM ledger_replays WHERE target_id = {p} AND {self.any_of('key')}"
        self.upsert_replay = (
            f"INSERT INTO ledger_replays (target_id, key, attempts, last_at) VALUES ({p}, {p}, 1, {p}) "
            "ON CONFLICT (target_id, key) DO UPDATE SET attempts = ledger_replays.attempts + 1, "
            "last_at = excluded.last_at"
        )
        self.delete_replays = f"DELETE FROM ledger_replays WHERE target_id = {p} AND {self.any_of('key')}"
        self.current_version = f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}"
        self.schema_version = f"SELECT max(version) FROM {VERSION_TABLE}"
        self.insert_version = f"INSERT INTO {VERSION_TABLE} (version, applied_at) VALUES ({p}, {p})"

    # -- spelling --------------------------------------------------------------------------------------------

    @abstractmethod
    def any_of(self, column: str) -> str:
        """SQL true when `column` equals an element of the one parameter `list_param` makes."""

    @staticmethod
    @abstractmethod
    def list_param(values: Sequence[str], /) -> Any:
        """A list of strings as one parameter, for `any_of`."""

    @staticmethod
    @abstractmethod
    def to_db_time(moment: datetime, /) -> Any:
        """A UTC time as ledger_runs stores it."""

    @staticmethod
    @abstractmethod
    def from_db_time(value: Any, /) -> datetime:
        """A time stored in ledger_runs, back as an aware UTC datetime."""

    @staticmethod
    @abstractmethod
    def applied_at(moment: datetime, /) -> Any:
        """A UTC time as the version table stores it."""

    @abstractmethod
    def lookup(self, columns: str, target_id: int, keys: Sequence[str]) -> tuple[str, Any]:
        """(SQL, parameters) selecting `columns` of the target's rows among `keys`, in one statement."""

    # -- the hot-path writes: one statement each, over at most batch_size rows -----------------------------------

    @abstractmethod
    def insert_pending(
        self, conn: C, target_id: int, rows: Sequence[PendingRow], now: Any, replace_submitted: bool
    ) -> Iterable[str]:
        """Insert `rows` as pending, overwriting failed or unknown rows (and submitted ones if
        `replace_submitted`); returns the keys written. A key left out is taken."""

    @abstractmethod
    def update_submitted(self, conn: C, target_id: int, pairs: Sequence[tuple[str, str]], now: Any) -> int:
        """(key, run_id): make existing rows submitted, unless submitted as another run id; returns how many
        rows changed (a row submitted as that same run id counts). Inserts nothing."""

    @abstractmethod
    def update_outcome(self, conn: C, target_id: int, keys: Sequence[str], state: str, error: str, now: Any) -> int:
        """Move existing rows that are not submitted to `state` with `error`; returns how many changed."""

    @abstractmethod
    def upsert_adopted(self, conn: C, target_id: int, rows: Sequence[AdoptedRow], now: Any) -> int:
        """Adopted runs become submitted rows (created or overwritten), unless submitted as another run id;
        returns how many were written."""

    @abstractmethod
    def upsert_imported(self, conn: C, rows: Sequence[tuple[int, LedgerEntry]]) -> int:
        """(target id, entry): upsert whole rows, except over a submitted row with another state or run id;
        returns how many were written. `rows` holds a (target id, key) once at most."""
