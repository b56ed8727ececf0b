"""The ledger's interface: what every backend does, and the rules it keeps (see the method docstrings).

Only the contract and the lifetime (locking between threads, closing, the clock) live here; the one
implementation both backends share is `sql.SqlLedger`. The values and errors are in `values`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.values import (
    AdoptedRow,
    Clock,
    LedgerEntry,
    ManifestRecord,
    ManifestTotal,
    PendingRow,
    RunState,
    Target,
    utc_now,
)

# Keys per statement: big enough to amortise a round trip, small enough for any parameter limit.
BATCH = 1000
# Characters of an outcome's error text kept (an engine's message can be long): every row stays far below the line
# limit of an import (rows.MAX_LINE_BYTES), so that an export can always be imported.
ERROR_LIMIT = 8192


class Ledger(ABC):
    """The record of what was applied, per target. Every method is one transaction, durable before it returns.

    Instances are safe to share between threads (calls are serialised). Use as a context manager or `close()`.
    """

    def __init__(self, location: str, clock: Clock = utc_now) -> None:
        self.location = location  # for messages: a path or a URL without its password
        self._clock = clock
        self._mutex = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise LedgerError("the ledger clock returned a naive datetime; it must be timezone-aware")
        return now.astimezone(UTC)

    # -- locking and reading -------------------------------------------------------------------------------

    @abstractmethod
    def lock(self, target: Target, *, wait: float = 0.0) -> AbstractContextManager[None]:
        """Exclusive per target across processes and machines; waits up to `wait` seconds, then raises
        LedgerLockedError. The lock dies with its holder (kill -9 included)."""

    @abstractmethod
    def schema_version(self) -> int:
        """The version of the ledger's schema (the last migration applied)."""

    @abstractmethod
    def targets(self) -> list[Target]:
        """Every target that has a row or had one, sorted by (tenant_id, address)."""

    @abstractmethod
    def lookup(self, target: Target, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """The recorded entries among `keys` (absent keys are left out), in one query; callers pass at most
        about BATCH keys at a time."""

    @abstractmethod
    def count(self, target: Target) -> int: ...

    @abstractmethod
    def entries(
        self, target: Target, manifests: Collection[str] | None = None, states: Collection[RunState] | None = None
    ) -> Iterator[LedgerEntry]:
        """Every entry of the target (of those manifests and states only, if given), streamed in key order (byte
        order of UTF-8, on every backend), a page at a time; the filters run in the database.

        No transaction stays open between pages, so the caller may write to the ledger while iterating.
        """

    @abstractmethod
    def state_digest(self, target: Target, keys: Iterable[str]) -> str:
        """A digest of the (key, digest, run_id, state) of these keys, absent keys included.

        Order does not matter (the result equals that of the keys sorted); each occurrence of a key counts, so
        pass each key once. Identical on every backend for the same contents; streams in constant memory.
        A plan stores it; `apply PLAN.json` recomputes it to refuse a stale plan.
        """

    @abstractmethod
    def manifest_totals(self, target: Target, manifests: Collection[str]) -> dict[str, ManifestTotal]:
        """Per manifest (of those given, with any submitted row), its submitted rows: one aggregate query."""

    @abstractmethod
    def replays(self, target: Target, keys: Sequence[str]) -> dict[str, int]:
        """key -> how many times `retry` replayed it (keys never replayed are absent)."""

    @abstractmethod
    def records(self, target: Target, manifests: Collection[str]) -> dict[str, ManifestRecord]:
        """The records of these manifests (see `seal`) that still hold: no write that may change a manifest's rows
        (a pending row, an adoption, an import, a forget: by any process) happened since its record was made. A
        ledger from before records (schema < 3, read-only) has none."""

    @abstractmethod
    def generations(self, target: Target, manifests: Collection[str]) -> dict[str, int]:
        """Per manifest, a count of the writes that may have changed its rows, those of this instance left out
        (absent: none). Read before planning, and handed back to `seal`."""

    @abstractmethod
    def seal(self, target: Target, records: Sequence[ManifestRecord], since: Mapping[str, int]) -> list[str]:
        """Make these records, each only if no write but this instance's may have changed its manifest's rows since
        `since` (`generations`): what the caller planned and wrote is then what the rows are. Returns the
        manifests recorded; a record replaces the one before."""

    # -- writing ---------------------------------------------------------------------------------------------

    @abstractmethod
    def record_pending(self, target: Target, rows: Sequence[PendingRow], *, replace_submitted: bool = False) -> None:
        """Record runs about to be sent. All or nothing: if any key is already pending or submitted, nothing is
        written and KeyTakenError lists those keys (safe against racing processes even without the lock).
        `replace_submitted`: submitted rows may be replaced too (`apply --resubmit-changed` sends a new run for
        a key whose content changed; the old run stays in the engine, stamped with the same key).
        A failed or unknown row is overwritten (created_at kept)."""

    @abstractmethod
    def record_submitted(self, target: Target, pairs: Sequence[tuple[str, str]]) -> None:
        """(key, run_id): the engine accepted these runs. Allowed from any state but `submitted` with another
        run id (idempotent for the same run id). Keys that cannot move raise TransitionError after the others
        were recorded."""

    @abstractmethod
    def record_failed(self, target: Target, keys: Sequence[str], error: str) -> None:
        """The engine refused these runs. Submitted or missing keys raise TransitionError after the others
        were recorded."""

    @abstractmethod
    def record_unknown(self, target: Target, keys: Sequence[str], error: str) -> None:
        """These runs' fate is unknown (timeout, crash). Same rules as record_failed."""

    @abstractmethod
    def adopt(self, target: Target, rows: Sequence[AdoptedRow]) -> None:
        """Runs found in the engine become `submitted` with their run id (rows created or overwritten). A key
        already submitted with another run id raises TransitionError after the others were recorded."""

    @abstractmethod
    def record_replays(self, target: Target, keys: Sequence[str]) -> None:
        """These keys' runs were replayed in the engine (under the same run ids): one more attempt each."""

    @abstractmethod
    def forget(self, target: Target, keys: Sequence[str]) -> int:
        """Delete these rows (runs removed from git, at the user's request); returns how many existed."""

    # -- moving ledgers ----------------------------------------------------------------------------------------

    @abstractmethod
    def export_rows(self) -> Iterator[dict[str, Any]]:
        """Every row of every target, sorted by (tenant_id, address, key); JSON-able, times in ISO 8601 UTC
        (the format of `rows`)."""

    @abstractmethod
    def import_rows(self, rows: Iterable[dict[str, Any]]) -> int:
        """Upsert exported rows in one transaction; returns how many. Refuses (and writes nothing) if a row
        would move a submitted run to another state or run id, or is not a valid row (RowError)."""

    # -- lifetime ----------------------------------------------------------------------------------------------

    @abstractmethod
    def _close(self) -> None: ...

    def close(self) -> None:
        with self._mutex:
            if not self._closed:
                self._closed = True
                self._close()

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError(f"the ledger {self.location} is closed")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
