"""The calls RPC threads hand to the scheduler, applied inside its transaction (a mixin of Scheduler)."""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from hatchet_client.engine.dispatch import event_runs, materialize, replay, spawn, targets, triggers
from hatchet_client.engine.dispatch import events as ev
from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.dispatch.transitions import ACTIVE, UNSETTLED, Transitions
from hatchet_client.engine.dispatch.workers import Worker
from hatchet_client.engine.schema import insert_workflows, iso_utc
from hatchet_client.engine.validate import RequestError

log = logging.getLogger("hatchet_client.engine")
MAX_LOG_MESSAGE = 64 * 1024


def _not_found(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.NOT_FOUND, message)


class CallsMixin:
    """What each call does. The state it changes belongs to the Scheduler (the scheduler thread only)."""

    clock: Callable[[], float]
    _workers: dict[str, Worker]
    _versions: dict[str, WorkflowDef]
    _latest: dict[str, str]
    _announced: set[tuple[str, tuple[str, ...]]]
    _spawned: bool  # runs were appended in this round (the writer is told, to index them)

    # --- applying calls ---

    def _apply(self, tr: Transitions, call: ev.Call) -> Any:
        conn, now = tr.conn, self.clock()
        if isinstance(call, ev.StepEvent):
            return self._step_event(tr, call)
        if isinstance(call, ev.PutWorkflow):
            return self._put_workflow(tr, call.definition)
        if isinstance(call, ev.Register):
            worker_id = str(uuid.uuid4())
            conn.execute(
                "INSERT INTO workers (worker_id, name, actions, slots, registered_at, status)"
                " VALUES (?, ?, ?, ?, ?, 'ACTIVE')",
                (worker_id, call.name, json.dumps(sorted(call.actions)), json.dumps(call.capacity), iso_utc(now)),
            )
            self._workers[worker_id] = Worker(worker_id, call.name, frozenset(call.actions), call.capacity, now)
            return worker_id
        if isinstance(call, ev.Revive | ev.Listen):
            worker = self._workers.get(call.worker_id) or self._revive(conn, call.worker_id)
            if isinstance(call, ev.Listen):
                if worker.stream is not None and worker.stream is not call.stream:
                    worker.stream.close()
                worker.stream = call.stream
                worker.last_heartbeat = now
            return True
        if isinstance(call, ev.Detach):
            gone = self._workers.get(call.worker_id)
            if gone is not None and gone.stream is call.stream:
                gone.stream = None
            for action in call.undelivered:
                row = tr.task(action.task_run_external_id)
                if row and row.status == "ASSIGNED" and row.worker_id == call.worker_id:
                    tr.requeue(row)
            return True
        if isinstance(call, ev.Unsubscribe):
            self._drop_worker(tr, call.worker_id, "STOPPED")
            return True
        if isinstance(call, ev.Cancel):
            return self._cancel(tr, call.ids)
        if isinstance(call, ev.Replay):
            return replay.replay(tr, call.ids)
        if isinstance(call, ev.RefreshTimeout | ev.ReleaseSlot):
            row = tr.task(call.external_id)
            if row is None or row.status not in ACTIVE:
                raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, f"task {call.external_id!r} is not running")
            if isinstance(call, ev.ReleaseSlot):
                holder = self._workers.get(row.worker_id or "")
                if holder is not None:
                    holder.release(row.task_id)
                return True
            conn.execute("UPDATE tasks SET timeout_at = timeout_at + ? WHERE task_id = ?", (call.seconds, row.task_id))
            return conn.execute("SELECT timeout_at FROM tasks WHERE task_id = ?", (row.task_id,)).fetchone()[0]
        if isinstance(call, ev.Log):
            conn.execute(
                "INSERT INTO task_logs (task_external_id, retry_count, created_at, level, message) VALUES (?, ?, ?, ?, ?)",
                (call.external_id, call.retry_count, call.created_at, call.level, call.message[:MAX_LOG_MESSAGE]),
            )
            return True
        if isinstance(call, ev.PushEvents):
            stored, spawns = event_runs.push(conn, now, call.events, self._latest, self._versions)
            self._spawn(conn, spawns)
            return stored
        return self._trigger_change(conn, now, call)

    def _trigger_change(self, conn: sqlite3.Connection, now: float, call: ev.Call) -> Any:
        """Crons and scheduled runs created, changed or deleted over REST (dispatch/triggers.py)."""
        if isinstance(call, ev.CreateCron):
            return triggers.create_cron(
                conn,
                now,
                call.workflow_name,
                call.name,
                call.expression,
                call.input_text,
                call.metadata_text,
                call.priority,
            )
        if isinstance(call, ev.DeleteCron):
            return triggers.delete_cron(conn, call.cron_id)
        if isinstance(call, ev.EnableCron):
            return triggers.enable_cron(conn, now, call.cron_id, call.enabled)
        if isinstance(call, ev.CreateSchedule):
            return triggers.create_schedule(
                conn, now, call.workflow_name, call.trigger_at, call.input_text, call.metadata_text, call.priority
            )
        if isinstance(call, ev.UpdateSchedule):
            return triggers.update_schedule(conn, call.schedule_id, call.trigger_at)
        if isinstance(call, ev.DeleteSchedules):
            return triggers.delete_schedules(conn, call.ids)
        return None  # Wake

    def _spawn(self, conn: sqlite3.Connection, spawns: list[spawn.Spawn]) -> None:
        if spawns:
            spawn.append_runs(conn, spawns)
            self._spawned = True

    def _step_event(self, tr: Transitions, call: ev.StepEvent) -> bool:
        row = tr.task(call.external_id)
        if row is None:
            raise _not_found(f"task run {call.external_id!r} not found")
        current = (
            row.worker_id == call.worker_id
            and row.status in ACTIVE
            and (call.retry_count is None or call.retry_count == row.retry_count)
        )
        if not current:  # a report from an attempt the engine has moved on from (reassigned, timed out, cancelled)
            log.debug("engine: %s of task %s ignored: not the current attempt", call.kind, call.external_id)
            return False
        if call.kind == "started":
            tr.start(row)
        elif call.kind == "completed":
            tr.complete(row, call.payload)
        elif call.kind == "failed":
            tr.fail(row, call.payload, retryable=not call.should_not_retry, retry_after_ms=call.retry_after_ms)
        elif call.kind == "cancelled":
            tr.cancel(row, "the worker cancelled the task")
        return True

    def _put_workflow(self, tr: Transitions, definition: WorkflowDef) -> tuple[str, bool]:
        conn = tr.conn
        digest = definition.digest()
        current = self._latest.get(definition.name)
        if current is not None and self._versions[current].digest() == digest:
            return current, False
        version_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO workflow_versions (version_id, name, digest, definition, created_at) VALUES (?, ?, ?, ?, ?)",
            (version_id, definition.name, digest, definition.to_json(), iso_utc(self.clock())),
        )
        insert_workflows(conn, [definition.name], "registered")
        triggers.sync_declared(conn, self.clock(), definition)
        self._versions[version_id] = definition
        self._latest[definition.name] = version_id
        if current is None:
            waiting = materialize.backlog(conn, definition.name, self._latest, self._versions, self.clock)
            if waiting:
                log.info(
                    "engine: workflow %s registered: %d runs received before it are queued", definition.name, waiting
                )
        key = (definition.name, definition.not_enforced)
        if definition.not_enforced and key not in self._announced:
            self._announced.add(key)
            log.warning(
                "engine: workflow %s declares what the embedded engine accepts but does not enforce: %s",
                definition.name,
                "; ".join(definition.not_enforced),
            )
        return version_id, True

    def _cancel(self, tr: Transitions, ids: tuple[str, ...]) -> list[str]:
        cancelled = []
        for target in targets.resolve(tr, ids):
            if not target.seq:
                continue
            rows = [target.task] if target.task is not None else targets.run_tasks(tr, target.seq)
            hit = False
            for stale in sorted(rows, key=lambda r: r.status == "PENDING"):
                row = tr.task(stale.external_id)  # cancelling one task may have skipped others
                if row is not None and row.status in UNSETTLED:
                    hit = tr.cancel(row, "the task was cancelled") or hit
            if hit:
                cancelled.append(target.ident)
        return cancelled

    # --- workers ---

    def _drop_worker(self, tr: Transitions, worker_id: str, status: str) -> None:
        tr.conn.execute("UPDATE workers SET status = ? WHERE worker_id = ?", (status, worker_id))
        for row in tr.tasks_where("t.worker_id = ? AND t.status IN ('ASSIGNED', 'RUNNING')", (worker_id,)):
            tr.requeue(row)
        worker = self._workers.pop(worker_id, None)
        if worker is not None and worker.stream is not None:
            worker.stream.close()

    def _revive(self, conn: sqlite3.Connection, worker_id: str) -> Worker:
        row = conn.execute("SELECT name, actions, slots FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
        if row is None:
            raise _not_found(f"worker {worker_id!r} is not registered")
        conn.execute("UPDATE workers SET status = 'ACTIVE' WHERE worker_id = ?", (worker_id,))
        worker = Worker(worker_id, row[0], frozenset(json.loads(row[1])), json.loads(row[2]), self.clock())
        self._workers[worker_id] = worker
        log.info("engine: worker %s (%s) is back", worker.name, worker_id)
        return worker
