"""The scheduler: one thread that owns every dispatch decision and its own write connection.

Each round takes every call RPC threads have queued, applies them in ONE transaction (each under a savepoint, so a
bad call fails alone), follows new runs (materialize), enforces timers (execution and schedule timeouts, workers
whose heartbeats stopped), assigns queued tasks to free slots, commits, and only then answers the calls, sends the
assigned and cancelled actions to the workers' streams and announces settled runs. So nothing a worker or a client
was told is missing from the database, whatever moment the engine dies at.

On start (`recover`): workflow versions and active workers are loaded (a worker reconnects with its id, and gets
`worker_timeout` to do so), tasks that were ASSIGNED are queued again (their action may never have left), RUNNING
tasks stay with their worker (its reports arrive once it reconnects; if it does not, it is declared dead and the
tasks are queued again; their timeout still counts).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hatchet_client.engine.dispatch import events as ev
from hatchet_client.engine.dispatch import materialize, results, triggers
from hatchet_client.engine.dispatch.assign import Assigner
from hatchet_client.engine.dispatch.calls import CallsMixin
from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.dispatch.subscriptions import RunWatchers
from hatchet_client.engine.dispatch.transitions import Transitions
from hatchet_client.engine.dispatch.workers import Worker
from hatchet_client.engine.errors import EngineError, EngineStopping
from hatchet_client.engine.schema import connect
from hatchet_client.engine.validate import RequestError

log = logging.getLogger("hatchet_client.engine")
C = TypeVar("C", bound=ev.Call)

CALL_TIMEOUT_SECONDS = 30.0
MAX_ROUND_CALLS = 5000


class Scheduler(CallsMixin):
    def __init__(
        self,
        db_path: Path,
        tenant_id: str,
        *,
        worker_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_runs: Callable[[], None] | None = None,
    ) -> None:
        self._path = db_path
        self._on_runs = on_runs  # told after a commit that appended runs (crons, schedules, events)
        self._spawned = False
        self.tenant_id = tenant_id
        self.worker_timeout = worker_timeout
        self.clock = clock
        self.watchers = RunWatchers()
        self._queue: queue.SimpleQueue[ev.Call | None] = queue.SimpleQueue()
        self._workers: dict[str, Worker] = {}
        self._versions: dict[str, WorkflowDef] = {}
        self._latest: dict[str, str] = {}
        self._announced: set[tuple[str, tuple[str, ...]]] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._woken = False

    # --- for RPC threads ---

    def start(self) -> None:
        conn = connect(self._path, synchronous="FULL")
        try:
            self._recover(conn)
        except BaseException:
            conn.close()
            raise
        self._thread = threading.Thread(target=self._run, args=(conn,), name="engine-scheduler", daemon=True)
        self._thread.start()

    def call(self, call: C, timeout: float = CALL_TIMEOUT_SECONDS) -> Any:
        """Hand `call` to the scheduler; its result once committed. RequestError or EngineStopping otherwise."""
        self.post(call)
        if not call.done.wait(timeout):
            raise EngineStopping(f"the engine's scheduler did not answer within {timeout:g}s")
        if call.error is not None:
            raise call.error
        return call.result

    def post(self, call: ev.Call) -> None:
        with self._lock:
            if self._closed:
                raise EngineStopping("the engine is stopping")
            self._queue.put(call)

    def wake(self) -> None:
        """New runs are stored: look at them soon (coalesced: one wake-up queued at a time)."""
        if not self._woken and not self._closed:
            self._woken = True
            self.post(ev.Wake())

    def heartbeat(self, worker_id: str) -> None:
        worker = self._workers.get(worker_id)
        if worker is not None:
            worker.last_heartbeat = self.clock()
            return
        self.call(ev.Revive(worker_id))

    def definition(self, version_id: str) -> WorkflowDef | None:
        return self._versions.get(version_id)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
        self.watchers.close()

    # --- the thread ---

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            stopping = False
            while not stopping:
                try:
                    first = self._queue.get(timeout=self._wait(conn))
                except queue.Empty:
                    first = ev.Wake()
                calls: list[ev.Call] = []
                item: ev.Call | None = first
                while item is not None:
                    calls.append(item)
                    if len(calls) >= MAX_ROUND_CALLS:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                stopping = item is None
                self._woken = False
                self._round(conn, calls)
        except Exception:
            log.exception("engine: the scheduler stopped")
        finally:
            with self._lock:
                self._closed = True
            self._fail_queued()
            for worker in self._workers.values():
                if worker.stream is not None:
                    worker.stream.close()
            conn.close()

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.error = EngineStopping("the engine is stopping")
                item.done.set()

    def _wait(self, conn: sqlite3.Connection) -> float:
        """Seconds until the next timer (a timeout, a schedule deadline, a backoff ending), at most 1 s (heartbeats)."""
        now = self.clock()
        row = conn.execute(
            "SELECT min(x) FROM (SELECT min(timeout_at) AS x FROM tasks WHERE status IN ('ASSIGNED', 'RUNNING')"
            " UNION ALL SELECT min(schedule_deadline) FROM tasks WHERE status = 'QUEUED'"
            " UNION ALL SELECT min(available_at) FROM tasks WHERE status = 'QUEUED' AND available_at > ?)",
            (now,),
        ).fetchone()
        due = [t for t in (row[0], triggers.next_due(conn)) if t is not None]
        nearest = min(due) - now if due else 1.0
        return max(0.0, min(1.0, nearest))

    def _round(self, conn: sqlite3.Connection, calls: list[ev.Call]) -> None:
        tr = Transitions(conn, self._versions, self._workers, self.clock)
        assigner = Assigner(conn, self._versions, self.tenant_id)
        sends: list[tuple[Worker, Any]] = []
        more = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            for call in calls:
                self._apply_one(tr, call)
            self._fire(conn)
            _, more = materialize.follow(conn, self._latest, self._versions, self.clock)
            self._timers(tr)
            sends = assigner.assign(self._workers, self.clock())
            conn.execute("COMMIT")
        except Exception as exc:
            log.exception("engine: a scheduler round failed and was rolled back")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for call in calls:
                call.error = call.error or EngineError(f"the engine could not record this: {exc}")
            self._load(conn)
            sends, tr.effects.cancels, tr.effects.finished = [], [], []
            self._spawned = False
        finally:
            for call in calls:
                call.done.set()
        if self._spawned:
            self._spawned = False
            if self._on_runs is not None:
                self._on_runs()
        for worker, action in sends:
            if worker.stream is not None and not worker.stream.closed:
                worker.stream.send(action)
            else:  # its stream ended since: the next round puts the task back
                self._queue.put(ev.Detach(worker.worker_id, worker.stream or _NO_STREAM, [action]))
        for worker_id, row in tr.effects.cancels:
            target = self._workers.get(worker_id)
            if target is not None and target.listening and target.stream is not None:
                target.stream.send(assigner.cancel_action(row, self._versions[row.version_id].name))
        if tr.effects.finished:
            self.watchers.announce(tr.effects.finished, lambda rid, seq: results.finished_event(conn, rid, seq))
        if more:
            self.wake()

    def _fire(self, conn: sqlite3.Connection) -> None:
        """Start the runs of the crons and scheduled runs that are due (dispatch/triggers.py); a failure is
        logged and rolled back alone, so it never stops the rounds."""
        conn.execute("SAVEPOINT fire")
        try:
            self._spawn(conn, triggers.due(conn, self.clock()))
            conn.execute("RELEASE fire")
        except Exception:
            log.exception("engine: firing crons and scheduled runs failed")
            conn.execute("ROLLBACK TO fire")
            conn.execute("RELEASE fire")

    def _apply_one(self, tr: Transitions, call: ev.Call) -> None:
        conn = tr.conn
        marks = (len(tr.effects.cancels), len(tr.effects.finished))
        conn.execute("SAVEPOINT call")
        try:
            call.result = self._apply(tr, call)
            conn.execute("RELEASE call")
        except Exception as exc:
            conn.execute("ROLLBACK TO call")
            conn.execute("RELEASE call")
            del tr.effects.cancels[marks[0] :], tr.effects.finished[marks[1] :]
            call.error = exc
            if not isinstance(exc, RequestError):
                log.exception("engine: a %s call failed", type(call).__name__)
                self._load_slots(conn)

    def _timers(self, tr: Transitions) -> None:
        now = self.clock()
        for worker in list(self._workers.values()):
            if now - worker.last_heartbeat > self.worker_timeout:
                log.warning(
                    "engine: worker %s (%s) sent no heartbeat for %.0fs: its tasks are queued again",
                    worker.name,
                    worker.worker_id,
                    now - worker.last_heartbeat,
                )
                self._drop_worker(tr, worker.worker_id, "DEAD")
        for row in tr.tasks_where("t.status IN ('ASSIGNED', 'RUNNING') AND t.timeout_at <= ?", (now,)):
            tr.time_out(row)
        for row in tr.tasks_where("t.status = 'QUEUED' AND t.schedule_deadline <= ?", (now,)):
            tr.schedule_time_out(row)

    # --- start and reload ---

    def _load(self, conn: sqlite3.Connection) -> None:
        """In-memory state from the database: versions, active workers, the slots their tasks hold."""
        self._versions.clear()
        self._latest.clear()
        for version_id, name, text in conn.execute(
            "SELECT version_id, name, definition FROM workflow_versions ORDER BY seq"
        ).fetchall():
            self._versions[version_id] = WorkflowDef.from_json(text)
            self._latest[name] = version_id
        streams = {wid: w.stream for wid, w in self._workers.items()}
        beats = {wid: w.last_heartbeat for wid, w in self._workers.items()}
        self._workers.clear()
        now = self.clock()
        for worker_id, name, actions, slots in conn.execute(
            "SELECT worker_id, name, actions, slots FROM workers WHERE status = 'ACTIVE'"
        ).fetchall():
            worker = Worker(
                worker_id, name, frozenset(json.loads(actions)), json.loads(slots), beats.get(worker_id, now)
            )
            worker.stream = streams.get(worker_id)
            self._workers[worker_id] = worker
        self._load_slots(conn)

    def _load_slots(self, conn: sqlite3.Connection) -> None:
        for worker in self._workers.values():
            worker.used.clear()
            worker.held.clear()
        rows = conn.execute(
            "SELECT t.task_id, t.worker_id, t.readable_id, s.version_id FROM tasks t JOIN run_state s ON s.seq = t.run_seq"
            " WHERE t.status IN ('ASSIGNED', 'RUNNING')"
        ).fetchall()
        for task_id, worker_id, readable_id, version_id in rows:
            holder = self._workers.get(worker_id)
            if holder is not None:
                holder.hold(task_id, self._versions[version_id].task(readable_id).slot_requests)

    def _recover(self, conn: sqlite3.Connection) -> None:
        self._load(conn)
        tr = Transitions(conn, self._versions, self._workers, self.clock)
        conn.execute("BEGIN IMMEDIATE")
        try:
            assigned = tr.tasks_where("t.status = 'ASSIGNED'")
            orphans = [r for r in tr.tasks_where("t.status = 'RUNNING'") if r.worker_id not in self._workers]
            for row in assigned + orphans:
                tr.requeue(row)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if assigned or orphans:
            log.info("engine: %d tasks assigned when the engine stopped are queued again", len(assigned) + len(orphans))


class _NoStream:
    closed = True


_NO_STREAM: Any = _NoStream()
