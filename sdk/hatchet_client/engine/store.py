"""The read side of the engine's database: what runs it received, with filters. Usable while an engine runs.

Lookups use the index tables for runs up to `index_state.indexed_upto` and scan the (short) unindexed tail, in
one read transaction, so every query sees every committed run.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from hatchet_client.engine.errors import EngineError
from hatchet_client.engine.schema import (
    BUCKET_BITS,
    SCHEMA_VERSION,
    check_workflow_name,
    connect,
    init_database,
    insert_workflows,
)

T = TypeVar("T")

# The lookup buckets that hold indexed runs: each lookup probes them all (see schema.py).
_BUCKETS = (
    f"WITH RECURSIVE buckets(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM buckets"
    f" WHERE n < (SELECT indexed_upto FROM index_state) >> {BUCKET_BITS}) "
)
BUCKETS = _BUCKETS  # for the lookups written outside this module (rest_events.py)
_RECEIVED_AT = "(SELECT c.received_at FROM commits c WHERE c.first_seq <= r.seq ORDER BY c.first_seq DESC LIMIT 1)"
_COLUMNS = (
    f"r.seq, r.run_id, r.workflow_name, r.input, r.additional_metadata, r.priority, {_RECEIVED_AT},"
    " coalesce(s.status, 'QUEUED'), s.started_at, s.finished_at, s.error, coalesce(s.retry_count, 0)"
)
# A run's dispatch state (see schema.py): a run without one is QUEUED (its workflow has no version yet).
_FROM = "runs r LEFT JOIN run_state s ON s.seq = r.seq"
_STATUS = "coalesce((SELECT s2.status FROM run_state s2 WHERE s2.seq = r.seq), 'QUEUED')"
RUN_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run the engine accepted."""

    run_id: str
    workflow_name: str
    input: dict[str, Any]
    additional_metadata: dict[str, Any]
    priority: int | None
    received_at: datetime
    seq: int = field(default=0, compare=False)
    status: str = "QUEUED"  # QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    retry_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "input": self.input,
            "additional_metadata": self.additional_metadata,
            "priority": self.priority,
            "received_at": _z(self.received_at),
            "status": self.status,
            "started_at": _z(self.started_at),
            "finished_at": _z(self.finished_at),
            "error": self.error,
            "retry_count": self.retry_count,
        }


def _z(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs to select. `metadata` pairs match string values; `operator` combines them."""

    workflow: str | None = None
    workflow_names: Sequence[str] | None = None  # any of these (None: no restriction)
    metadata: Sequence[tuple[str, str]] = ()
    operator: Literal["AND", "OR"] = "AND"
    since: datetime | None = None
    until: datetime | None = None
    statuses: Sequence[str] | None = None  # any of these run statuses (None: no restriction)
    worker_id: str | None = None  # runs with a task assigned to this worker (now or last)


class KnownWorkflow(NamedTuple):
    """A workflow the engine knows: `source` is `declared` (when it started) or `registered` (later)."""

    name: str
    registered_at: str
    source: str


class LikePatternError(ValueError):
    """A name filter that an SQL LIKE refuses (it ends with the escape character)."""


_STAR = object()  # `%`: any run of characters
_ONE = object()  # `_`: any one character


def like_matcher(search: str) -> Callable[[str], bool]:
    """Whether a name matches `ILIKE '%' || search || '%'`, as Hatchet's workflow listing filters (PostgreSQL:
    case-insensitive; `%` any run, `_` any one character, `\\` escapes the next one). Linear-time matching (no
    regular expression to backtrack on a pattern of many `%`)."""
    search = search.lower()  # before splitting into characters: some characters lower to two
    tokens: list[object] = [_STAR]
    i = 0
    while i < len(search):
        ch = search[i]
        if ch == "\\":
            if i + 1 == len(search):
                raise LikePatternError("LIKE pattern must not end with escape character")
            tokens.append(search[i + 1])
            i += 2
            continue
        tokens.append(_STAR if ch == "%" else _ONE if ch == "_" else ch)
        i += 1
    tokens.append(_STAR)

    def match(name: str) -> bool:
        text = name.lower()
        t = p = 0
        star_p, star_t = -1, 0
        while t < len(text):
            token = tokens[p] if p < len(tokens) else None
            if token is _STAR:
                star_p, star_t = p, t
                p += 1
            elif token is not None and (token is _ONE or token == text[t]):
                p += 1
                t += 1
            elif star_p >= 0:  # let the last `%` take one more character
                star_t += 1
                p, t = star_p + 1, star_t
            else:
                return False
        return all(token is _STAR for token in tokens[p:])

    return match


class RawRun(NamedTuple):
    """A stored run with its JSON texts as stored (what REST and GetRunDetails send back verbatim)."""

    seq: int
    run_id: str
    workflow_name: str
    input: str
    additional_metadata: str
    priority: int | None
    received_at: str
    status: str = "QUEUED"
    started_at: float | None = None  # epoch seconds
    finished_at: float | None = None
    error: str | None = None
    retry_count: int = 0


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _row_to_run(row: Sequence[Any]) -> StoredRun:
    seq, run_id, name, input_text, meta_text, priority, received, status, started, finished, error, retries = row
    return StoredRun(
        run_id=run_id,
        workflow_name=name,
        input=json.loads(input_text),
        additional_metadata=json.loads(meta_text),
        priority=priority,
        received_at=datetime.fromisoformat(received),
        seq=seq,
        status=status,
        started_at=_moment(started),
        finished_at=_moment(finished),
        error=error,
        retry_count=retries,
    )


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _where(flt: RunFilter) -> tuple[str, list[Any]]:
    """SQL conditions on `runs r` (including the `:wm` watermark parameter slot first) and their parameters."""
    conds: list[str] = []
    params: list[Any] = []
    if flt.metadata:
        pairs = list(flt.metadata)
        joiner = " INTERSECT " if flt.operator == "AND" else " UNION "
        indexed = joiner.join(
            "SELECT seq FROM run_metadata WHERE bucket IN (SELECT n FROM buckets) AND key = ? AND value = ?"
            for _ in pairs
        )
        tail_one = "EXISTS (SELECT 1 FROM json_each(r2.additional_metadata) j WHERE j.key = ? AND j.type = 'text' AND j.value = ?)"
        tail = f" {flt.operator} ".join(tail_one for _ in pairs)
        conds.append(
            f"r.seq IN (SELECT seq FROM ({indexed}) UNION ALL "
            f"SELECT r2.seq FROM runs r2 WHERE r2.seq > (SELECT indexed_upto FROM index_state) AND ({tail}))"
        )
        for key, value in pairs:
            params += [key, value]
        for key, value in pairs:
            params += [key, value]
    if flt.workflow is not None:
        conds.append("r.workflow_name = ?")
        params.append(flt.workflow)
    if flt.workflow_names is not None:
        conds.append(f"r.workflow_name IN ({', '.join('?' for _ in flt.workflow_names)})")
        params += list(flt.workflow_names)
    if flt.since is not None:
        conds.append(
            "r.seq >= (SELECT coalesce(min(first_seq), 9223372036854775807) FROM commits WHERE received_at >= ?)"
        )
        params.append(_utc_text(flt.since))
    if flt.until is not None:
        conds.append("r.seq <= (SELECT coalesce(max(last_seq), 0) FROM commits WHERE received_at <= ?)")
        params.append(_utc_text(flt.until))
    if flt.statuses is not None:
        conds.append(f"{_STATUS} IN ({', '.join('?' for _ in flt.statuses)})")
        params += list(flt.statuses)
    if flt.worker_id is not None:
        conds.append("r.seq IN (SELECT run_seq FROM tasks WHERE worker_id = ?)")
        params.append(flt.worker_id)
    return (" WHERE " + " AND ".join(conds) if conds else ""), params


class RunStore:
    """Reads the runs an engine stored. Thread-safe: each query borrows a pooled connection."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        if not self.db_path.is_file():
            raise EngineError(f"no engine database at {self.db_path}")
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._known: tuple[int, frozenset[str]] = (0, frozenset())
        with self._connection() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if 1 <= version < SCHEMA_VERSION:  # an older engine's database: the upgrades only add to it
            init_database(self.db_path)
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            self.close()
            raise EngineError(f"{self.db_path} is not an engine database of this version (schema {version})")
        with self._connection() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = 'tenant_id'").fetchone()
        self.tenant_id: str = row[0]

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise EngineError("the run store is closed")
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            try:
                conn = connect(self.db_path, synchronous="NORMAL")
            except sqlite3.Error as exc:
                raise EngineError(f"cannot open the engine database {self.db_path}: {exc}") from None
            self._all.append(conn)
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._pool.put(conn)

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees the same committed state."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            yield conn

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """`query(conn)` in one read transaction (the dispatch read side uses it)."""
        with self._snapshot() as conn:
            return query(conn)

    def close(self) -> None:
        self._closed = True
        for conn in self._all:
            conn.close()
        self._all.clear()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self, flt: RunFilter | None = None) -> int:
        where, params = _where(flt or RunFilter())
        with self._snapshot() as conn:
            return int(conn.execute(f"{_BUCKETS}SELECT count(*) FROM runs r{where}", params).fetchone()[0])

    def list_runs(self, workflow: str | None = None, metadata: dict[str, str] | None = None) -> Iterator[StoredRun]:
        """Every run in arrival order, optionally only one workflow's and those whose metadata has all the pairs."""
        yield from self.select(RunFilter(workflow=workflow, metadata=tuple((metadata or {}).items())))

    def select(
        self, flt: RunFilter, *, newest_first: bool = False, limit: int | None = None, offset: int = 0
    ) -> Iterator[StoredRun]:
        where, params = _where(flt)
        sql = f"{_BUCKETS}SELECT {_COLUMNS} FROM {_FROM}{where} ORDER BY r.seq {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        with self._snapshot() as conn:
            cursor = conn.execute(sql, params)
            while batch := cursor.fetchmany(1000):
                for row in batch:
                    yield _row_to_run(row)

    def page(self, flt: RunFilter, limit: int, offset: int) -> tuple[int, list[RawRun]]:
        """How many runs match, and one page of them newest first, from the same snapshot."""
        where, params = _where(flt)
        with self._snapshot() as conn:
            total = int(conn.execute(f"{_BUCKETS}SELECT count(*) FROM runs r{where}", params).fetchone()[0])
            rows = conn.execute(
                f"{_BUCKETS}SELECT {_COLUMNS} FROM {_FROM}{where} ORDER BY r.seq DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return total, [RawRun(*row) for row in rows]

    def run_ids(self, flt: RunFilter, limit: int | None = None) -> list[str]:
        """The matching runs' ids, newest first (at most `limit`)."""
        where, params = _where(flt)
        bound = "" if limit is None else f" LIMIT {int(limit)}"
        with self._snapshot() as conn:
            sql = f"{_BUCKETS}SELECT r.run_id FROM runs r{where} ORDER BY r.seq DESC{bound}"
            return [row[0] for row in conn.execute(sql, params)]

    def get_run(self, run_id: str) -> StoredRun | None:
        row = self.get_raw_run(run_id)
        return None if row is None else _row_to_run(row)

    def get_raw_run(self, run_id: str) -> RawRun | None:
        with self._snapshot() as conn:
            row = conn.execute(
                f"{_BUCKETS}SELECT {_COLUMNS} FROM {_FROM} WHERE r.seq ="
                " (SELECT seq FROM run_ids WHERE bucket IN (SELECT n FROM buckets) AND run_id = ?)"
                f" UNION ALL SELECT {_COLUMNS} FROM {_FROM}"
                " WHERE r.seq > (SELECT indexed_upto FROM index_state) AND r.run_id = ? LIMIT 1",
                (run_id, run_id),
            ).fetchone()
        return None if row is None else RawRun(*row)

    def workflow_names(self) -> list[str]:
        with self._snapshot() as conn:
            return [row[0] for row in conn.execute("SELECT name FROM workflows ORDER BY name")]

    # --- workflows the engine knows ---

    def register_workflow(self, name: str) -> bool:
        """Make a workflow known to the engine (what PutWorkflow does on Hatchet); False if it was known already.
        Takes effect for the next trigger call of an engine on this database. EngineError for an empty name."""
        check_workflow_name(name)
        with self._connection() as conn:
            try:
                added = insert_workflows(conn, [name], "registered")
            except sqlite3.Error as exc:
                raise EngineError(f"cannot register workflow {name!r}: {exc}") from None
        return bool(added)

    def known_workflows(self) -> frozenset[str]:
        """The names of the workflows the engine knows (declared or registered); empty: a recorder engine.
        Cheap when nothing changed (one indexed read), so the trigger path asks on every call."""
        with self._connection() as conn:
            top = conn.execute("SELECT coalesce(max(id), 0) FROM registered_workflows").fetchone()[0]
            if top == self._known[0]:
                return self._known[1]
            rows = conn.execute("SELECT id, name FROM registered_workflows").fetchall()
        known = (max((row[0] for row in rows), default=0), frozenset(row[1] for row in rows))
        self._known = known  # one assignment: readers on other threads see the old pair or the new one
        return known[1]

    def list_workflows(self, search: str = "", limit: int = 50, offset: int = 0) -> tuple[int, list[KnownWorkflow]]:
        """(how many known workflows match `search`, one page of them, newest registration first), matched as
        Hatchet's listing does (see like_matcher). LikePatternError for a pattern that ends with `\\`."""
        match = like_matcher(search)
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT name, registered_at, source FROM registered_workflows ORDER BY id DESC"
            ).fetchall()
        matching = [KnownWorkflow(*row) for row in rows if match(row[0])]
        return len(matching), matching[offset : offset + limit]

    def token_known(self, token_id: str) -> bool:
        with self._connection() as conn:
            row = conn.execute("SELECT revoked FROM tokens WHERE token_id = ?", (token_id,)).fetchone()
        return row is not None and not row[0]


def workflow_id(tenant_id: str, workflow_name: str) -> str:
    """A stable id per workflow name (the engine has no workflow registry)."""
    return str(uuid.uuid5(uuid.UUID(tenant_id), workflow_name))
