"""The engine's single writer thread: group commit of accepted calls, and lookup indexing when idle.

Each accepted call hands its rows to the writer and waits until they are committed, so a call is never answered
before its runs are durable. Calls that arrive while a transaction is in progress are committed together in the
next one (group commit); every call is still all-or-nothing.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hatchet_client.engine.errors import EngineError, EngineStopping
from hatchet_client.engine.schema import BUCKET_BITS, connect, iso_utc
from hatchet_client.engine.validate import RunRow

log = logging.getLogger(__name__)

_AUTOCHECKPOINT_PAGES = 10_000  # 40 MiB of WAL
_INSERT_RUN = "INSERT INTO runs (run_id, workflow_name, input, additional_metadata, priority) VALUES (?, ?, ?, ?, ?)"
_INDEX_RUN_IDS = f"""
INSERT OR IGNORE INTO run_ids (bucket, run_id, seq)
SELECT seq >> {BUCKET_BITS}, run_id, seq FROM runs WHERE seq > ? AND seq <= ? ORDER BY 1, 2
"""
# Only string values are indexed: a filter `k:v` matches a stored string, never a number (as in Hatchet's AND).
_INDEX_METADATA = f"""
INSERT OR IGNORE INTO run_metadata (bucket, key, value, seq)
SELECT r.seq >> {BUCKET_BITS}, j.key, j.value, r.seq FROM runs r, json_each(r.additional_metadata) j
WHERE r.seq > ? AND r.seq <= ? AND j.type = 'text' ORDER BY 1, 2, 3, 4
"""


@dataclass(eq=False)
class _Pending:
    rows: Sequence[RunRow]
    notice: bool = False  # not a request to wait for: more runs to index (notice_runs)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class RunWriter:
    """Owns the write connection. `write()` blocks until the rows are committed (or raises)."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        max_group_rows: int = 20_000,
        index_idle_seconds: float = 0.2,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._max_group_rows = max_group_rows
        self._index_idle = index_idle_seconds
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._last_received = 0.0

    def start(self) -> None:
        conn = connect(self._path, synchronous=self._synchronous)
        # Fewer, larger checkpoints while calls stream in; the idle path checkpoints as well.
        conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
        row = conn.execute("SELECT received_at FROM commits ORDER BY first_seq DESC LIMIT 1").fetchone()
        if row is not None:
            self._last_received = datetime.fromisoformat(row[0]).timestamp()
        self._thread = threading.Thread(target=self._run, args=(conn,), name="engine-writer", daemon=True)
        self._thread.start()

    def write(self, rows: Sequence[RunRow]) -> None:
        """Store the rows; returns once they are committed. No rows: an index_now() request."""
        pending = _Pending(rows)
        with self._lock:
            if self._closed or self._thread is None:
                raise EngineStopping("the engine is not running")
            self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def notice_runs(self) -> None:
        """Runs were appended by another connection (the scheduler's): index them when idle. Does not wait."""
        with self._lock:
            if self._closed or self._thread is None:
                return
            self._queue.put(_Pending((), notice=True))

    def index_now(self) -> None:
        """Index every stored run before returning (normally done in idle time)."""
        self.write(())

    def close(self) -> None:
        """Commit what was queued, then stop the thread and close the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    # --- the writer thread ---

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            unindexed = self._has_unindexed(conn)
            dirty = False  # written since the last idle checkpoint
            last_write = 0.0  # monotonic time of the last commit: idle work waits until calls pause
            stopping = False
            while not stopping:
                try:
                    if unindexed or dirty:
                        wait = self._index_idle - (time.monotonic() - last_write)
                        item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                    else:
                        item = self._queue.get()
                except queue.Empty:
                    try:
                        if unindexed:
                            unindexed = self._index_step(conn)
                            dirty = True
                        else:
                            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                            dirty = False
                    except sqlite3.Error as exc:  # readers scan the unindexed tail; retry when next idle
                        log.error("engine: idle indexing or checkpoint failed: %s", exc)
                    continue
                group: list[_Pending] = []
                n = 0
                while item is not None:
                    group.append(item)
                    n += len(item.rows)
                    if n >= self._max_group_rows:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                stopping = item is None
                writes = [p for p in group if p.rows]
                if writes:
                    self._commit_group(conn, writes)
                    unindexed = dirty = True
                    last_write = time.monotonic()
                for p in group:
                    if p.notice:
                        unindexed = dirty = True
                        last_write = time.monotonic()
                    elif not p.rows:  # an index_now() request
                        self._index_all(conn, p)
        except Exception as exc:
            log.exception("engine: the writer stopped")
            self._fail_queued(EngineError(f"the engine's writer stopped: {exc}"))
        finally:
            conn.close()
            self._fail_queued(EngineStopping("the engine is stopping"))

    def _fail_queued(self, error: EngineError) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.error = error
                item.done.set()

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Pending]) -> None:
        try:
            self._commit(conn, group)
        except Exception as exc:  # noqa: BLE001 - any failure is handed to the waiting callers, not lost
            if len(group) == 1:
                group[0].error = exc
            else:  # one bad call must not fail the others: commit them one by one
                for p in group:
                    try:
                        self._commit(conn, [p])
                    except Exception as one_exc:  # noqa: BLE001 - handed to that call's caller
                        p.error = one_exc
        for p in group:
            if p.error is not None:
                log.error("engine: could not store %d runs: %s", len(p.rows), p.error)
            p.done.set()

    def _commit(self, conn: sqlite3.Connection, group: list[_Pending]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # received_at never goes backwards (it maps to seq ranges), also after runs the scheduler appended
            # (dispatch/spawn.py): the time is taken once the write lock is held.
            previous = conn.execute("SELECT received_at FROM commits ORDER BY first_seq DESC LIMIT 1").fetchone()
            now = max(time.time(), self._last_received)
            if previous is not None:
                now = max(now, datetime.fromisoformat(previous[0]).timestamp())
            base = conn.execute("SELECT coalesce(max(seq), 0) FROM runs").fetchone()[0]
            names: set[str] = set()
            for p in group:
                conn.executemany(_INSERT_RUN, p.rows)
                names.update({r[1] for r in p.rows})
            last = conn.execute("SELECT max(seq) FROM runs").fetchone()[0]
            n = sum(len(p.rows) for p in group)
            if last != base + n:
                raise EngineError(f"run sequence gap: expected {base + n}, found {last}")
            conn.execute(
                "INSERT INTO commits (first_seq, last_seq, received_at) VALUES (?, ?, ?)",
                (base + 1, last, iso_utc(now)),
            )
            conn.executemany("INSERT OR IGNORE INTO workflows (name) VALUES (?)", [(name,) for name in names])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # some errors (disk full) have rolled back already
                conn.execute("ROLLBACK")
            raise
        self._last_received = now

    def _has_unindexed(self, conn: sqlite3.Connection) -> bool:
        row = conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM runs) > (SELECT indexed_upto FROM index_state)"
        ).fetchone()
        return bool(row[0])

    def _index_step(self, conn: sqlite3.Connection) -> bool:
        """Index the next batch of runs; return whether some are still unindexed."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            low = conn.execute("SELECT indexed_upto FROM index_state").fetchone()[0]
            top = conn.execute("SELECT coalesce(max(seq), 0) FROM runs").fetchone()[0]
            bucket_end = ((((low + 1) >> BUCKET_BITS) + 1) << BUCKET_BITS) - 1  # one bucket per step at most
            high = min(top, bucket_end)
            if high > low:
                conn.execute(_INDEX_RUN_IDS, (low, high))
                conn.execute(_INDEX_METADATA, (low, high))
                conn.execute("UPDATE index_state SET indexed_upto = ? WHERE id = 1", (high,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return bool(high < top)

    def _index_all(self, conn: sqlite3.Connection, pending: _Pending) -> None:
        try:
            while self._index_step(conn):
                pass
        except Exception as exc:  # noqa: BLE001 - handed to the caller of index_now()
            pending.error = exc
        pending.done.set()
