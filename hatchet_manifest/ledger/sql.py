"""The ledger as SQL, once for both backends: which statements each call runs, in which transaction, and what
their results mean (refusals, transition rules, paging, the state digest, importing).

`SqlLedger` is written against a `Dialect` (the SQL text and parameter style of one database, and the one
statement behind each hot-path write) and two hooks a backend provides: `_run` (one transaction: connections,
retries, durability) and `_transaction` (one import). Locking and opening the database are the backend's too.
"""

from __future__ import annotations

import itertools
import operator
from abc import abstractmethod
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from hatchet_manifest.ledger.base import BATCH, ERROR_LIMIT
from hatchet_manifest.ledger.dialect import COLUMNS, STATE_COLUMNS, C, Dialect, entry_reader
from hatchet_manifest.ledger.digest import combine_fingerprints, fingerprint
from hatchet_manifest.ledger.migrations import REPLAYS_VERSION, Migration, pending_migrations, require_current
from hatchet_manifest.ledger.records import RecordKeeping
from hatchet_manifest.ledger.rows import parse_rows, row_to_json
from hatchet_manifest.ledger.rules import adopt_refusals, ensure_unique, import_refusal, refusals
from hatchet_manifest.ledger.values import (
    AdoptedRow,
    Clock,
    KeyTakenError,
    LedgerEntry,
    ManifestTotal,
    PendingRow,
    RunState,
    StateRow,
    Target,
    TransitionError,
)

T = TypeVar("T")

_FIRST = operator.itemgetter(0)  # the key of a PendingRow, an AdoptedRow or a (key, run_id) pair


def chunked(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class SqlLedger(RecordKeeping[C], Generic[C]):
    """Every call of the interface over `dialect`; a backend adds its connection, transactions and locks. Writes
    that may change a manifest's rows count in its generation (`records`)."""

    def __init__(self, location: str, clock: Clock, dialect: Dialect[C]) -> None:
        super().__init__(location, clock, dialect)
        self._entry = entry_reader(dialect.from_db_time)
        self._target_ids: dict[Target, int] = {}  # committed ids only: a target's id never changes

    # -- what a backend provides (and `_run`, one transaction: see records.RecordKeeping) -----------------------

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[C]:
        """One durable write transaction, run once whatever happens (an import consumes its input)."""

    def _apply_migrations(self, conn: C, schema: tuple[Migration, ...]) -> None:
        """Inside the backend's migration transaction (which it serialises): the missing migrations, each
        recorded in the version table."""
        d = self.dialect
        conn.execute(d.version_table_ddl)
        current = int(conn.execute(d.current_version).fetchone()[0])
        for version, statements in pending_migrations(current, schema, self.location):
            for statement in statements:
                conn.execute(statement)
            conn.execute(d.insert_version, (version, d.applied_at(self._now())))

    def _check_schema(self, conn: C, schema: tuple[Migration, ...]) -> None:  # read-only: nothing is migrated
        require_current(int(conn.execute(self.dialect.current_version).fetchone()[0]), schema, self.location)

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _known_target_id(self, conn: C, target: Target) -> int | None:
        cached = self._target_ids.get(target)
        if cached is not None:
            return cached
        row = conn.execute(self.dialect.select_target_id, (target.tenant_id, target.address)).fetchone()
        if row is None:
            return None
        self._target_ids[target] = target_id = int(row[0])
        return target_id

    def _target_id_in(self, conn: C, target: Target) -> int:
        """The target's id, created inside the caller's transaction (not cached: it may still roll back)."""
        params = (target.tenant_id, target.address)
        rows = conn.execute(self.dialect.insert_target, params).fetchall()
        if not rows:  # it was there already
            rows = conn.execute(self.dialect.select_target_id, params).fetchall()
        return int(rows[0][0])

    def _target_id(self, target: Target) -> int:
        cached = self._target_ids.get(target)  # a target's id never changes: no need to wait for the connection
        if cached is not None:
            return cached
        known = self._run(lambda conn: self._known_target_id(conn, target), write=False)
        if known is not None:
            return known
        target_id = self._run(lambda conn: self._target_id_in(conn, target))
        self._target_ids[target] = target_id
        return target_id

    def _current(self, conn: C, target_id: int, keys: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """key -> (state, run id) of the recorded keys among `keys`."""
        rows = conn.execute(self.dialect.select_current, (target_id, self.dialect.list_param(keys)))
        return {key: (state, run_id) for key, state, run_id in rows}

    def _batches(self, items: Sequence[T]) -> Iterable[Sequence[T]]:
        """`items` as the dialect's write statements take them."""
        size = self.dialect.batch_size
        if size is None or len(items) <= size:
            return (items,)
        return (items[i : i + size] for i in range(0, len(items), size))

    # -- reading -----------------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return self._run(lambda conn: int(conn.execute(self.dialect.schema_version).fetchone()[0]), write=False)

    def targets(self) -> list[Target]:
        def body(conn: C) -> list[Target]:
            return [Target(tenant, address) for tenant, address in conn.execute(self.dialect.select_targets)]

        return self._run(body, write=False)

    def lookup(self, target: Target, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        def body(conn: C) -> dict[str, LedgerEntry]:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not keys:
                return {}
            sql, params = self.dialect.lookup(COLUMNS, target_id, keys)
            return {entry.key: entry for entry in map(self._entry, conn.execute(sql, params))}

        return self._run(body, write=False)

    def _state_rows(self, target: Target, keys: Sequence[str]) -> dict[str, StateRow]:
        """(digest, run_id, state) of the recorded keys among `keys` (at most BATCH), in one query."""

        def body(conn: C) -> dict[str, StateRow]:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not keys:
                return {}
            sql, params = self.dialect.lookup(STATE_COLUMNS, target_id, keys)
            return {key: (digest, run_id, state) for key, digest, run_id, state in conn.execute(sql, params)}

        return self._run(body, write=False)

    def _page(
        self, target: Target, after: str | None, manifests: list[str] | None, limit: int, states: list[str] | None
    ) -> list[LedgerEntry]:
        """Up to `limit` entries with key > `after`, in key order."""
        d = self.dialect

        def body(conn: C) -> list[LedgerEntry]:
            if d.pin_plans:
                conn.execute(d.pin_plans)
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return []
            sql = d.page_start
            params: list[Any] = [target_id]
            if after is not None:
                sql += d.page_after
                params.append(after)
            if manifests is not None:
                sql += d.page_manifests
                params.append(d.list_param(manifests))
            if states is not None:
                sql += d.page_states
                params.append(d.list_param(states))
            params.append(limit)
            return [self._entry(row) for row in conn.execute(sql + d.page_end, params)]

        return self._run(body, write=False)

    def entries(
        self, target: Target, manifests: Collection[str] | None = None, states: Collection[RunState] | None = None
    ) -> Iterator[LedgerEntry]:
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

    def count(self, target: Target) -> int:
        def body(conn: C) -> int:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return 0
            return int(conn.execute(self.dialect.count_runs, (target_id,)).fetchone()[0])

        return self._run(body, write=False)

    def manifest_totals(self, target: Target, manifests: Collection[str]) -> dict[str, ManifestTotal]:
        wanted = sorted(set(manifests))
        d = self.dialect

        def body(conn: C) -> dict[str, ManifestTotal]:
            target_id = self._known_target_id(conn, target)
            if target_id is None or not wanted:
                return {}
            rows = conn.execute(d.manifest_totals, (target_id, d.list_param(wanted)))
            return {name: ManifestTotal(int(n), d.from_db_time(oldest)) for name, n, oldest in rows}

        return self._run(body, write=False)

    def replays(self, target: Target, keys: Sequence[str]) -> dict[str, int]:
        if not keys or self.schema_version() < REPLAYS_VERSION:  # a read-only ledger not yet migrated has none
            return {}
        d = self.dialect

        def body(conn: C) -> dict[str, int]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return {}
            found: dict[str, int] = {}
            for chunk in chunked(sorted(set(keys))):
                found.update(
                    (key, int(n)) for key, n in conn.execute(d.select_replays, (target_id, d.list_param(chunk)))
                )
            return found

        return self._run(body, write=False)

    def state_digest(self, target: Target, keys: Iterable[str]) -> str:
        def fingerprints() -> Iterator[bytes]:
            for chunk in chunked(keys):
                found = self._state_rows(target, sorted(set(chunk)))
                for key in chunk:
                    yield fingerprint(key, found.get(key))

        return combine_fingerprints(fingerprints())

    # -- writing ---------------------------------------------------------------------------------------------

    def record_pending(self, target: Target, rows: Sequence[PendingRow], *, replace_submitted: bool = False) -> None:
        keys = ensure_unique(map(_FIRST, rows), "record_pending")
        if not keys:
            return
        d = self.dialect
        target_id = self._target_id(target)
        now = d.to_db_time(self._now())

        def body(conn: C) -> set[str]:
            # replaced submitted rows may belong to another manifest: its rows change too
            old = self._manifests_of(conn, target_id, keys) if replace_submitted else set()
            won: set[str] = set()
            for batch in self._batches(rows):
                won.update(d.insert_pending(conn, target_id, batch, now, replace_submitted))
            if len(won) != len(keys):
                raise KeyTakenError(target, [key for key in keys if key not in won])  # rolls the call back
            return self._bump(conn, target_id, old.union(r.manifest for r in rows))

        self._wrote(target_id, self._run(body))

    def record_submitted(self, target: Target, pairs: Sequence[tuple[str, str]]) -> None:
        keys = ensure_unique(map(_FIRST, pairs), "record_submitted")
        if not keys:
            return
        d = self.dialect
        now = d.to_db_time(self._now())

        def body(conn: C) -> dict[str, str]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return {key: "not in the ledger" for key in keys}
            changed = sum(d.update_submitted(conn, target_id, batch, now) for batch in self._batches(pairs))
            if changed == len(keys):
                return {}
            return refusals(pairs, self._current(conn, target_id, keys))

        problems = self._run(body, durable=False)
        if problems:
            raise TransitionError(target, "record as submitted", problems)

    def record_failed(self, target: Target, keys: Sequence[str], error: str) -> None:
        self._record_outcome(target, keys, "failed", error)

    def record_unknown(self, target: Target, keys: Sequence[str], error: str) -> None:
        self._record_outcome(target, keys, "unknown", error)

    def _record_outcome(self, target: Target, keys: Sequence[str], state: RunState, error: str) -> None:
        listed = ensure_unique(keys, f"record_{state}")
        if not listed:
            return
        error = error if len(error) <= ERROR_LIMIT else error[: ERROR_LIMIT - 3] + "..."
        d = self.dialect
        now = d.to_db_time(self._now())

        def body(conn: C) -> dict[str, str]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return {key: "not in the ledger" for key in listed}
            changed = sum(
                d.update_outcome(conn, target_id, batch, state, error, now) for batch in self._batches(listed)
            )
            if changed == len(listed):
                return {}
            return refusals(((key, None) for key in listed), self._current(conn, target_id, listed))

        problems = self._run(body, durable=False)
        if problems:
            raise TransitionError(target, f"record as {state}", problems)

    def adopt(self, target: Target, rows: Sequence[AdoptedRow]) -> None:
        keys = ensure_unique(map(_FIRST, rows), "adopt")
        if not keys:
            return
        d = self.dialect
        target_id = self._target_id(target)
        now = d.to_db_time(self._now())

        def body(conn: C) -> tuple[dict[str, str], set[str]]:  # rows taken from another manifest change it too
            touched = self._manifests_of(conn, target_id, keys) | {r.manifest for r in rows}
            done = sum(d.upsert_adopted(conn, target_id, batch, now) for batch in self._batches(rows)) == len(keys)
            problems = {} if done else adopt_refusals(rows, self._current(conn, target_id, keys))
            return problems, self._bump(conn, target_id, touched)

        problems, bumped = self._run(body)
        self._wrote(target_id, bumped)
        if problems:
            raise TransitionError(target, "adopt", problems)

    def record_replays(self, target: Target, keys: Sequence[str]) -> None:
        listed = ensure_unique(keys, "record_replays")
        if not listed:
            return
        target_id = self._target_id(target)
        d = self.dialect

        def body(conn: C) -> None:
            now = d.to_db_time(self._now())
            for key in listed:
                conn.execute(d.upsert_replay, (target_id, key, now))

        self._run(body)

    def forget(self, target: Target, keys: Sequence[str]) -> int:
        listed = ensure_unique(keys, "forget")
        d = self.dialect

        def body(conn: C) -> int:
            if d.pin_plans:
                conn.execute(d.pin_plans)
            target_id = self._known_target_id(conn, target)
            if target_id is None or not listed:
                return 0
            touched = self._manifests_of(conn, target_id, listed)
            conn.execute(d.delete_replays, (target_id, d.list_param(listed)))
            deleted = int(conn.execute(d.delete_keys, (target_id, d.list_param(listed))).rowcount)
            self._bump(conn, target_id, touched)  # after the rows, as every write locks them: no deadlock
            return deleted

        return self._run(body)

    # -- moving ledgers ----------------------------------------------------------------------------------------

    def export_rows(self) -> Iterator[dict[str, Any]]:
        for target in self.targets():
            for entry in self.entries(target):
                yield row_to_json(target, entry)

    def import_rows(self, rows: Iterable[dict[str, Any]]) -> int:
        count = 0
        with self._transaction() as conn:
            ids: dict[Target, int] = {}  # created in this transaction: cached for it only
            for chunk in parse_rows(rows, BATCH):
                count += len(chunk)
                self._import_chunk(conn, chunk, ids)
        self._target_ids.clear()  # ids created by the import are committed now; re-read them lazily
        return count

    def _import_chunk(self, conn: C, rows: list[tuple[Target, LedgerEntry]], ids: dict[Target, int]) -> None:
        """Upsert rows (a target and key once at most); LedgerError, to roll the import back, if one would
        change a submitted run."""
        new = dict.fromkeys(target for target, _ in rows if target not in ids)
        for target in new:
            ids[target] = self._target_id_in(conn, target)
        if self.dialect.upsert_imported(conn, [(ids[target], entry) for target, entry in rows]) == len(rows):
            for target in new:  # any row of a target imported into may have changed: every record of it ends
                self._bump_target(conn, ids[target])
            for target_id in {ids[target] for target, _ in rows}:
                self._bump(conn, target_id, {e.manifest for t, e in rows if ids[t] == target_id})
            return
        keys_of: dict[Target, list[str]] = {}
        for target, e in rows:
            keys_of.setdefault(target, []).append(e.key)
        raise import_refusal(rows, {target: self._current(conn, ids[target], keys) for target, keys in keys_of.items()})
