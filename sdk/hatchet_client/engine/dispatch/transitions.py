"""Task state changes, applied by the scheduler inside its transaction.

A task's states: PENDING (waits for its parents), QUEUED (ready; `available_at` may hold it back for a retry's
backoff), ASSIGNED (sent to a worker, whose slots it holds; `timeout_at` counts from here, as on Hatchet), RUNNING
(the worker said STARTED), then COMPLETED, FAILED, CANCELLED, or SKIPPED (it can never run: a parent failed or was
cancelled, the run was cancelled before it was queued, or it is the on-failure task of a run that did not fail).
A run is settled when none of its tasks can change any more; the on-failure task is queued first if a task failed.

In-memory effects (slots released, actions to send, runs to announce) are recorded in the Effects of the
transaction and applied by the scheduler after it commits (slots at once: a rolled back transaction reloads them).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hatchet_client.engine.dispatch.definitions import TaskDef, WorkflowDef
from hatchet_client.engine.dispatch.workers import Worker

ACTIVE = ("ASSIGNED", "RUNNING")
UNSETTLED = ("PENDING", "QUEUED", "ASSIGNED", "RUNNING")

TASK_COLUMNS = (
    "t.task_id, t.run_seq, t.readable_id, t.external_id, t.status, t.retry_count, t.worker_id, t.is_on_failure,"
    " s.version_id, r.run_id, t.action, t.replay_base"
)
TASK_FROM = "tasks t JOIN run_state s ON s.seq = t.run_seq JOIN runs r ON r.seq = t.run_seq"


class TaskRow(NamedTuple):
    task_id: int
    run_seq: int
    readable_id: str
    external_id: str
    status: str
    retry_count: int
    worker_id: str | None
    is_on_failure: int
    version_id: str
    run_id: str
    action: str
    replay_base: int  # retry_count when the task was last replayed: the retry policy counts from here


@dataclass
class Effects:
    """What a transaction does outside the database once it commits."""

    cancels: list[tuple[str, TaskRow]] = field(default_factory=list)  # (worker id, task) to send CANCEL_STEP_RUN
    finished: list[tuple[str, int]] = field(default_factory=list)  # (run id, run seq) settled


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class Transitions:
    def __init__(
        self,
        conn: sqlite3.Connection,
        versions: dict[str, WorkflowDef],
        workers: dict[str, Worker],
        clock: Callable[[], float],
    ) -> None:
        self.conn = conn
        self.versions = versions
        self.workers = workers
        self.clock = clock
        self.effects = Effects()

    # --- reading ---

    def task(self, external_id: str) -> TaskRow | None:
        row = self.conn.execute(f"SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.external_id = ?", (external_id,))
        found = row.fetchone()
        return None if found is None else TaskRow(*found)

    def tasks_where(self, condition: str, params: tuple[Any, ...] = ()) -> list[TaskRow]:
        rows = self.conn.execute(f"SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE {condition}", params)
        return [TaskRow(*row) for row in rows.fetchall()]

    def definition(self, row: TaskRow) -> TaskDef:
        return self.versions[row.version_id].task(row.readable_id)

    # --- worker events ---

    def start(self, row: TaskRow) -> None:
        now = self.clock()
        if row.status == "ASSIGNED":
            self.conn.execute(
                "UPDATE tasks SET status = 'RUNNING', started_at = ? WHERE task_id = ?", (now, row.task_id)
            )
            self.conn.execute(
                "UPDATE run_state SET status = 'RUNNING', started_at = coalesce(started_at, ?)"
                " WHERE seq = ? AND status = 'QUEUED'",
                (now, row.run_seq),
            )

    def complete(self, row: TaskRow, output: str) -> None:
        """An empty output (what the SDK sends for a task that returns nothing) is stored as no output."""
        if output and not is_json(output):
            self.fail(row, f"the task's output is not valid JSON: {output[:200]!r}", retryable=True)
            return
        self._release(row)
        self.conn.execute(
            "UPDATE tasks SET status = 'COMPLETED', output = ?, error = NULL, finished_at = ?,"
            " started_at = coalesce(started_at, ?) WHERE task_id = ?",
            (output or None, self.clock(), self.clock(), row.task_id),
        )
        definition = self.versions[row.version_id]
        if not row.is_on_failure:
            self._queue_ready_children(row, definition)
        self.settle(row.run_seq, row.run_id, row.version_id)

    def fail(self, row: TaskRow, error: str, *, retryable: bool, retry_after_ms: int | None = None) -> None:
        self._release(row)
        task = self.definition(row)
        now = self.clock()
        used = row.retry_count - row.replay_base  # a replay gives the task its retries again, as on Hatchet
        if retryable and used < task.retries:
            retry = row.retry_count + 1
            backoff = task.backoff(used + 1)
            wait = retry_after_ms / 1000 if retry_after_ms is not None and retry_after_ms > 0 else backoff
            self.conn.execute(
                "UPDATE tasks SET status = 'QUEUED', retry_count = ?, error = ?, worker_id = NULL, assigned_at = NULL,"
                " timeout_at = NULL, queued_at = ?, available_at = ?, schedule_deadline = ? WHERE task_id = ?",
                (retry, error, now, now + wait, now + wait + task.schedule_timeout, row.task_id),
            )
            self.conn.execute(
                "UPDATE run_state SET retry_count = max(retry_count, ?) WHERE seq = ?", (retry, row.run_seq)
            )
            return
        self.conn.execute(
            "UPDATE tasks SET status = 'FAILED', error = ?, finished_at = ? WHERE task_id = ?",
            (error, now, row.task_id),
        )
        if not row.is_on_failure:
            self._skip_descendants(row)
        self.settle(row.run_seq, row.run_id, row.version_id)

    def cancel(self, row: TaskRow, reason: str) -> bool:
        """Cancel one task (a running one gets CANCEL_STEP_RUN); its descendants are skipped. False if settled."""
        if row.status not in UNSETTLED:
            return False
        if row.status == "PENDING":
            self.conn.execute("UPDATE tasks SET status = 'SKIPPED' WHERE task_id = ?", (row.task_id,))
        else:
            if row.status in ACTIVE and row.worker_id is not None:
                self.effects.cancels.append((row.worker_id, row))
            self._release(row)
            self.conn.execute(
                "UPDATE tasks SET status = 'CANCELLED', error = ?, finished_at = ? WHERE task_id = ?",
                (reason, self.clock(), row.task_id),
            )
        if not row.is_on_failure:
            self._skip_descendants(row)
        self.settle(row.run_seq, row.run_id, row.version_id)
        return True

    def requeue(self, row: TaskRow) -> None:
        """Put an assigned or running task back in the queue, without using a retry (its worker is gone)."""
        self._release(row)
        now = self.clock()
        self.conn.execute(
            "UPDATE tasks SET status = 'QUEUED', worker_id = NULL, assigned_at = NULL, started_at = NULL,"
            " timeout_at = NULL, queued_at = ?, available_at = ?, schedule_deadline = ? WHERE task_id = ?",
            (now, now, now + self.definition(row).schedule_timeout, row.task_id),
        )

    def time_out(self, row: TaskRow) -> None:
        task = self.definition(row)
        if row.worker_id is not None:
            self.effects.cancels.append((row.worker_id, row))
        self.fail(row, f"Task exceeded timeout of {_seconds(task.timeout)}", retryable=True)

    def schedule_time_out(self, row: TaskRow) -> None:
        task = self.definition(row)
        self.cancel(row, f"SCHEDULING_TIMED_OUT: no worker took the task within {_seconds(task.schedule_timeout)}")

    # --- the DAG and the run ---

    def _release(self, row: TaskRow) -> None:
        worker = self.workers.get(row.worker_id or "")
        if worker is not None:
            worker.release(row.task_id)

    def _queue(self, task_ids: list[int], definition: WorkflowDef, readable_ids: list[str]) -> None:
        now = self.clock()
        self.conn.executemany(
            "UPDATE tasks SET status = 'QUEUED', queued_at = ?, available_at = ?, schedule_deadline = ?"
            " WHERE task_id = ? AND status = 'PENDING'",
            [
                (now, now, now + definition.task(rid).schedule_timeout, tid)
                for tid, rid in zip(task_ids, readable_ids, strict=True)
            ],
        )

    def _queue_ready_children(self, row: TaskRow, definition: WorkflowDef) -> None:
        children = definition.children(row.readable_id)
        if not children:
            return
        done = {
            rid
            for (rid,) in self.conn.execute(
                "SELECT readable_id FROM tasks WHERE run_seq = ? AND status = 'COMPLETED'", (row.run_seq,)
            )
        }
        ready = [child.readable_id for child in children if set(child.parents) <= done]
        if ready:
            marks = ",".join("?" * len(ready))
            found = self.conn.execute(
                f"SELECT task_id, readable_id FROM tasks WHERE run_seq = ? AND readable_id IN ({marks})",
                (row.run_seq, *ready),
            ).fetchall()
            self._queue([tid for tid, _ in found], definition, [rid for _, rid in found])

    def _skip_descendants(self, row: TaskRow) -> None:
        definition = self.versions[row.version_id]
        todo, seen = [row.readable_id], set()
        while todo:
            for child in definition.children(todo.pop()):
                if child.readable_id not in seen:
                    seen.add(child.readable_id)
                    todo.append(child.readable_id)
        if seen:
            marks = ",".join("?" * len(seen))
            self.conn.execute(
                f"UPDATE tasks SET status = 'SKIPPED' WHERE run_seq = ? AND status = 'PENDING'"
                f" AND readable_id IN ({marks})",
                (row.run_seq, *sorted(seen)),
            )

    def settle(self, run_seq: int, run_id: str, version_id: str) -> None:
        """If none of the run's tasks can change any more: queue its on-failure task (a task failed), or record
        the run's outcome and announce it."""
        rows = self.conn.execute(
            "SELECT task_id, readable_id, status, is_on_failure, error FROM tasks WHERE run_seq = ? ORDER BY task_id",
            (run_seq,),
        ).fetchall()
        if any(status in UNSETTLED and not on_failure for _, _, status, on_failure, _ in rows):
            return
        failed = [error for _, _, status, on_failure, error in rows if status == "FAILED" and not on_failure]
        cancelled = [error for _, _, status, on_failure, error in rows if status == "CANCELLED" and not on_failure]
        definition = self.versions[version_id]
        for task_id, readable_id, status, on_failure, _ in rows:
            if on_failure and status == "PENDING":
                if failed:
                    self._queue([task_id], definition, [readable_id])
                    return
                self.conn.execute("UPDATE tasks SET status = 'SKIPPED' WHERE task_id = ?", (task_id,))
            elif on_failure and status in UNSETTLED:
                return  # the on-failure task is still to run
        outcome = "FAILED" if failed else "CANCELLED" if cancelled else "COMPLETED"
        error = (failed or cancelled or [None])[0]
        now = self.clock()
        self.conn.execute(
            "UPDATE run_state SET status = ?, error = ?, finished_at = ?, started_at = coalesce(started_at, ?)"
            " WHERE seq = ?",
            (outcome, error, now, now, run_seq),
        )
        self.effects.finished.append((run_id, run_seq))


def _seconds(value: float) -> str:
    return f"{value:g}s"
