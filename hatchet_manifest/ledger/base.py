"""The ledger's values, its errors and the interface both backends implement.

A ledger row records one rendered run for one target: its key, digest, manifest, file, state and, once the
engine accepted it, its run id. States move `pending -> submitted | failed | unknown`; a `failed` or
`unknown` row may become `pending` again (a deliberate resubmission); a `submitted` row never leaves that
state, and keeps its run id, except through `forget`.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, NamedTuple, TypeVar, get_args

from hatchet_manifest.errors import LedgerError

RunState = Literal["pending", "submitted", "failed", "unknown"]
RUN_STATES: tuple[RunState, ...] = get_args(RunState)

Clock = Callable[[], datetime]
T = TypeVar("T")

# Keys per statement: big enough to amortise a round trip, small enough for any parameter limit.
BATCH = 1000


def replacing(upsert_pending: str) -> str:
    """The pending upsert that may also replace submitted rows."""
    states = "IN ('failed', 'unknown')"
    assert states in upsert_pending
    return upsert_pending.replace(states, "IN ('failed', 'unknown', 'submitted')")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Target:
    """Where runs go: one tenant on one engine. Staging and production never share ledger rows."""

    tenant_id: str
    address: str

    @property
    def id(self) -> str:
        return f"{self.tenant_id}@{self.address}"

    def __str__(self) -> str:
        return self.id

    def to_dict(self) -> dict[str, str]:
        """As plans and JSON output show it."""
        return {"tenant_id": self.tenant_id, "address": self.address}


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One recorded run. `run_id` is set exactly when `state` is `submitted`; times are UTC."""

    key: str
    digest: str
    run_id: str | None
    manifest: str
    file: str
    state: RunState
    error: str | None
    created_at: datetime
    updated_at: datetime


class PendingRow(NamedTuple):
    """A run about to be sent."""

    key: str
    digest: str
    manifest: str
    file: str


class AdoptedRow(NamedTuple):
    """A run found in the engine (by its stamps) that the ledger did not know as submitted."""

    key: str
    digest: str
    manifest: str
    file: str
    run_id: str


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a target's lock, as far as the backend can tell."""

    host: str
    pid: int
    since: datetime

    def __str__(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since.astimezone(UTC).isoformat(timespec='seconds')}"


def _some(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class LedgerLockedError(LedgerError):
    """Another process holds the target's lock (another apply is running against the same target)."""

    def __init__(self, target: Target, holder: LockHolder | None, waited: float) -> None:
        self.target = target
        self.holder = holder
        self.waited = waited
        who = f"held by {holder}" if holder else "held by another process"
        super().__init__(
            f"the ledger for target {target.id} is locked ({who}): another apply is running against this target; "
            f"gave up after waiting {waited:g}s"
        )


class KeyTakenError(LedgerError):
    """`record_pending` refused keys that are already pending or submitted; nothing of that call was recorded."""

    def __init__(self, target: Target, keys: Sequence[str]) -> None:
        self.target = target
        self.keys: tuple[str, ...] = tuple(sorted(keys))
        super().__init__(
            f"{len(self.keys)} run(s) for target {target.id} are already pending or submitted "
            f"(another apply may be sending them): {_some(self.keys)}"
        )


class TransitionError(LedgerError):
    """Keys whose state could not move as asked. The other keys of the same call were recorded."""

    def __init__(self, target: Target, action: str, problems: dict[str, str]) -> None:
        self.target = target
        self.problems = dict(sorted(problems.items()))
        items = [f"{key} ({why})" for key, why in self.problems.items()]
        super().__init__(f"cannot {action} {len(items)} run(s) for target {target.id}: {_some(items)}")


def refusals(runs: Iterable[tuple[str, str | None]], current: Mapping[str, tuple[str, str | None]]) -> dict[str, str]:
    """Why a state change left these runs alone, key -> reason, from what the ledger holds for them now
    (`current`: key -> (state, run id)). `runs`: (key, the run id the engine reported, or None for an outcome
    without one). A run submitted as that same id changed nothing and is no problem."""
    problems: dict[str, str] = {}
    for key, run_id in runs:
        state, existing = current.get(key, (None, None))
        accepted = f"; the engine accepted it as run {run_id}" if run_id else ""
        if state is None:
            problems[key] = f"not in the ledger{accepted}"
        elif state == "submitted" and existing != run_id:
            reported = f"; now reported as run {run_id}" if run_id else ""
            problems[key] = f"already submitted as run {existing}{reported}"
    return problems


def ensure_unique(keys: Iterable[str], what: str) -> list[str]:
    """The keys as a list; a key twice in one call is a caller bug, reported before anything is written."""
    listed = list(keys)
    if len(set(listed)) != len(listed):
        dupes = sorted(k for k, n in Counter(listed).items() if n > 1)
        raise LedgerError(f"{what}: the same key appears more than once in one call: {_some(dupes)}")
    return listed


def chunked(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


_DIGEST_DOMAIN = b"hatchet-manifest ledger state v1\n"


StateRow = tuple[str, str | None, str]  # (digest, run_id, state): what a plan depends on for one key


def fingerprint(key: str, row: StateRow | None) -> bytes:
    """sha256 of one key's state row, length-prefixed (unambiguous whatever the strings hold); an absent key
    has its own fingerprint."""
    digest, run_id, state = row if row is not None else (None, None, "absent")
    text = "".join("-" if x is None else f"{len(x)}:{x}" for x in (key, digest, run_id, state))
    return hashlib.sha256(text.encode()).digest()


def combine_fingerprints(fingerprints: Iterable[bytes]) -> str:
    """An order-independent digest of a multiset of fingerprints: sum modulo 2**256, then sha256.

    Order independence lets `state_digest` stream a million keys in constant memory instead of sorting them;
    the result is the same as for the keys sorted by key.
    """
    total = 0
    count = 0
    for fp in fingerprints:
        total = (total + int.from_bytes(fp, "big")) % (1 << 256)
        count += 1
    h = hashlib.sha256(_DIGEST_DOMAIN)
    h.update(count.to_bytes(8, "big"))
    h.update(total.to_bytes(32, "big"))
    return "sha256:" + h.hexdigest()


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
        """The recorded entries among `keys` (absent keys are left out); one query per BATCH keys."""

    @abstractmethod
    def _state_rows(self, target: Target, keys: Sequence[str]) -> dict[str, StateRow]:
        """(digest, run_id, state) of the recorded keys among `keys` (at most BATCH), in one query."""

    @abstractmethod
    def _page(
        self,
        target: Target,
        after: str | None,
        manifests: list[str] | None,
        limit: int,
        states: list[str] | None = None,
    ) -> list[LedgerEntry]:
        """Up to `limit` entries with key > `after`, in key order (byte order of UTF-8, on every backend)."""

    @abstractmethod
    def count(self, target: Target) -> int: ...

    def entries(
        self, target: Target, manifests: Collection[str] | None = None, states: Collection[RunState] | None = None
    ) -> Iterator[LedgerEntry]:
        """Every entry of the target (of those manifests and states only, if given), streamed in key order, a page
        at a time; the filters run in the database.

        No transaction stays open between pages, so the caller may write to the ledger while iterating.
        """
        wanted = None if manifests is None else sorted(set(manifests))
        in_states: list[str] | None = None if states is None else sorted(set(states))
        if wanted == [] or in_states == []:
            return
        after: str | None = None
        while True:
            page = self._page(target, after, wanted, BATCH, in_states)
            yield from page
            if len(page) < BATCH:
                return
            after = page[-1].key

    def state_digest(self, target: Target, keys: Iterable[str]) -> str:
        """A digest of the (key, digest, run_id, state) of these keys, absent keys included.

        Order does not matter (the result equals that of the keys sorted); each occurrence of a key counts, so
        pass each key once. Identical on every backend for the same contents; streams in constant memory.
        A plan stores it; `apply PLAN.json` recomputes it to refuse a stale plan.
        """

        def fingerprints() -> Iterator[bytes]:
            for chunk in chunked(keys):
                found = self._state_rows(target, sorted(set(chunk)))
                for key in chunk:
                    yield fingerprint(key, found.get(key))

        return combine_fingerprints(fingerprints())

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

    def record_failed(self, target: Target, keys: Sequence[str], error: str) -> None:
        """The engine refused these runs. Submitted or missing keys raise TransitionError after the others
        were recorded."""
        self._record_outcome(target, keys, "failed", error)

    def record_unknown(self, target: Target, keys: Sequence[str], error: str) -> None:
        """These runs' fate is unknown (timeout, crash). Same rules as record_failed."""
        self._record_outcome(target, keys, "unknown", error)

    @abstractmethod
    def _record_outcome(self, target: Target, keys: Sequence[str], state: RunState, error: str) -> None:
        """Move these rows to `state` (failed or unknown) with `error`; see record_failed."""

    @abstractmethod
    def adopt(self, target: Target, rows: Sequence[AdoptedRow]) -> None:
        """Runs found in the engine become `submitted` with their run id (rows created or overwritten). A key
        already submitted with another run id raises TransitionError after the others were recorded."""

    @abstractmethod
    def forget(self, target: Target, keys: Sequence[str]) -> int:
        """Delete these rows (runs removed from git, at the user's request); returns how many existed."""

    @abstractmethod
    def _import_chunk(self, rows: list[tuple[Target, LedgerEntry]]) -> None:
        """Upsert rows inside the transaction opened by `_import_transaction`; raise LedgerError on a conflict."""

    @abstractmethod
    def _import_transaction(self) -> AbstractContextManager[None]: ...

    # -- moving ledgers ----------------------------------------------------------------------------------------

    def export_rows(self) -> Iterator[dict[str, Any]]:
        """Every row of every target, sorted by (tenant_id, address, key); JSON-able, times in ISO 8601 UTC."""
        from hatchet_manifest.ledger.rows import row_to_json

        for target in self.targets():
            for entry in self.entries(target):
                yield row_to_json(target, entry)

    def import_rows(self, rows: Iterable[dict[str, Any]]) -> int:
        """Upsert exported rows in one transaction; returns how many. Refuses (and writes nothing) if a row
        would move a submitted run to another state or run id."""
        from hatchet_manifest.ledger.rows import RowError, row_from_json

        count = 0
        with self._mutex, self._import_transaction():
            for chunk in chunked(rows):
                parsed = []
                first_seen: dict[tuple[Target, str], int] = {}
                for row in chunk:
                    count += 1
                    target, entry = row_from_json(row, count)
                    earlier = first_seen.setdefault((target, entry.key), count)
                    if earlier != count:
                        raise RowError(count, f"the same target and key as row {earlier}")
                    parsed.append((target, entry))
                self._import_chunk(parsed)
        return count

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
