"""Assignment: queued tasks -> listening workers with the action and free slots, by priority then FIFO.

Per action that some listening worker with free slots registered, the queue is read in order (priority 3 first,
then arrival: `tasks_queue` index), as many as those workers could take; the candidates of all actions are merged
in the same order and each goes to the worker with the most free slots of the kinds it needs (so work spreads).
A task is ASSIGNED (timeout counting) in the transaction; its AssignedAction is sent once that commits.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from typing import Any

from hatchet_client._proto import dispatcher_pb2
from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.dispatch.transitions import TaskRow
from hatchet_client.engine.dispatch.workers import Worker
from hatchet_client.engine.store import workflow_id

_CANDIDATES = (
    "SELECT t.task_id, t.run_seq, t.readable_id, t.external_id, t.priority, t.retry_count, t.is_on_failure,"
    " t.queued_at, s.version_id, r.run_id, r.workflow_name, r.input, r.additional_metadata"
    " FROM tasks t JOIN run_state s ON s.seq = t.run_seq JOIN runs r ON r.seq = t.run_seq"
    " WHERE t.status = 'QUEUED' AND t.action = ? AND t.available_at <= ?"
    " ORDER BY t.priority DESC, t.task_id LIMIT ?"
)


def step_id(version_id: str, readable_id: str) -> str:
    """A stable id for a task of a workflow version (Hatchet's step id)."""
    return str(uuid.uuid5(uuid.UUID(version_id), readable_id))


def timestamp(seconds: float | None) -> dict[str, int]:
    """A google.protobuf.Timestamp's fields (our messages live in a private pool: no shared Timestamp class)."""
    if seconds is None:
        return {}
    return {"seconds": int(seconds), "nanos": int((seconds - int(seconds)) * 1e9)}


class Assigner:
    def __init__(self, conn: sqlite3.Connection, versions: Mapping[str, WorkflowDef], tenant_id: str) -> None:
        self.conn = conn
        self.versions = versions
        self.tenant_id = tenant_id

    def assign(self, workers: Mapping[str, Worker], now: float) -> list[tuple[Worker, Any]]:
        """Assign what fits now; the (worker, AssignedAction) pairs to send after commit."""
        free = [w for w in workers.values() if w.listening and w.has_free()]
        if not free:
            return []
        room: dict[str, int] = {}
        for worker in free:
            spare = max(worker.free(kind) for kind in worker.capacity)
            for action in worker.actions:
                room[action] = room.get(action, 0) + spare
        candidates: list[tuple[Any, ...]] = []
        for action, limit in room.items():
            rows = self.conn.execute(_CANDIDATES, (action, now, limit)).fetchall()
            candidates += [(*row, action) for row in rows]
        candidates.sort(key=lambda c: (-c[4], c[0]))
        out = []
        for cand in candidates:
            task_id, version_id, action = cand[0], cand[8], cand[13]
            definition = self.versions[version_id]
            task = definition.task(cand[2])
            fitting = [w for w in free if action in w.actions and w.fits(task.slot_requests)]
            if not fitting:
                continue
            worker = max(fitting, key=lambda w: (w.free(), -w.assigned_total))
            self.conn.execute(
                "UPDATE tasks SET status = 'ASSIGNED', worker_id = ?, assigned_at = ?, started_at = NULL,"
                " timeout_at = ? WHERE task_id = ?",
                (worker.worker_id, now, now + task.timeout, task_id),
            )
            worker.hold(task_id, task.slot_requests)
            out.append((worker, self._start_action(cand, definition, worker.worker_id)))
        return out

    def _payload(self, run_seq: int, input_text: str, definition: WorkflowDef, readable_id: str, failure: bool) -> str:
        parents: dict[str, Any] = {}
        errors: dict[str, str] = {}
        task = definition.task(readable_id)
        if task.parents or failure:
            rows = self.conn.execute(
                "SELECT readable_id, status, output, error FROM tasks WHERE run_seq = ? AND is_on_failure = 0",
                (run_seq,),
            ).fetchall()
            for rid, status, output, error in rows:
                if status == "COMPLETED" and (failure or rid in task.parents):
                    parents[rid] = {} if output is None else json.loads(output)
                elif status == "FAILED" and failure:
                    errors[rid] = error or ""
        body = f'{{"input":{input_text},"parents":{json.dumps(parents)},"triggered_by":"manual","user_data":{{}}'
        body += ',"overrides":{}'
        if failure:
            body += f',"step_run_errors":{json.dumps(errors)}'
        return body + "}"

    def _start_action(self, cand: tuple[Any, ...], definition: WorkflowDef, worker_id: str) -> Any:
        (_, run_seq, readable_id, external_id, priority, retry_count, on_failure, queued_at, version_id) = cand[:9]
        run_id, name, input_text, metadata, action = cand[9:14]
        return dispatcher_pb2.AssignedAction(
            tenant_id=self.tenant_id,
            workflow_run_id=run_id,
            job_id=version_id,
            job_name=name,
            job_run_id=run_id,
            task_id=step_id(version_id, readable_id),
            task_run_external_id=external_id,
            action_id=action,
            action_type=dispatcher_pb2.START_STEP_RUN,
            action_payload=self._payload(run_seq, input_text, definition, readable_id, bool(on_failure)),
            task_name=readable_id,
            retry_count=retry_count,
            additional_metadata=metadata,
            priority=priority,
            workflow_id=workflow_id(self.tenant_id, name),
            workflow_version_id=version_id,
            task_inserted_at=timestamp(queued_at),
        )

    def cancel_action(self, row: TaskRow, name: str) -> Any:
        return dispatcher_pb2.AssignedAction(
            tenant_id=self.tenant_id,
            workflow_run_id=row.run_id,
            job_id=row.version_id,
            job_name=name,
            job_run_id=row.run_id,
            task_id=step_id(row.version_id, row.readable_id),
            task_run_external_id=row.external_id,
            action_id=row.action,
            action_type=dispatcher_pb2.CANCEL_STEP_RUN,
            task_name=row.readable_id,
            retry_count=row.retry_count,
            workflow_id=workflow_id(self.tenant_id, name),
            workflow_version_id=row.version_id,
        )
