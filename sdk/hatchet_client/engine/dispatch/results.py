"""The read side of dispatch: a run's status and its tasks' outcomes, for GetRunDetails, SubscribeToWorkflowRuns and
the REST listing. Tasks that never reached the queue (PENDING, SKIPPED) are not shown, as Hatchet creates a DAG's
tasks only when they are ready."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from hatchet_client._proto import dispatcher_pb2
from hatchet_client._proto.v1 import admin_pb2
from hatchet_client.engine.dispatch.assign import timestamp

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
_SHOWN_STATUS = {
    "QUEUED": "QUEUED",
    "ASSIGNED": "RUNNING",
    "RUNNING": "RUNNING",
    "COMPLETED": "COMPLETED",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
}


class TaskOutcome(NamedTuple):
    readable_id: str
    external_id: str
    status: str  # as shown: QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED
    output: str | None
    error: str | None
    retry_count: int
    is_on_failure: bool


class RunState(NamedTuple):
    status: str
    started_at: float | None
    finished_at: float | None
    error: str | None
    retry_count: int


def run_state(conn: sqlite3.Connection, seq: int) -> RunState | None:
    row = conn.execute(
        "SELECT status, started_at, finished_at, error, retry_count FROM run_state WHERE seq = ?", (seq,)
    ).fetchone()
    return None if row is None else RunState(*row)


def task_outcomes(conn: sqlite3.Connection, seq: int) -> list[TaskOutcome]:
    rows = conn.execute(
        "SELECT readable_id, external_id, status, output, error, retry_count, is_on_failure FROM tasks"
        " WHERE run_seq = ? AND status NOT IN ('PENDING', 'SKIPPED') ORDER BY task_id",
        (seq,),
    ).fetchall()
    return [
        TaskOutcome(
            rid,
            ext,
            _SHOWN_STATUS[status],
            out if status == "COMPLETED" else None,
            err if status in ("FAILED", "CANCELLED") else None,
            retries,
            bool(failure),
        )
        for rid, ext, status, out, err, retries, failure in rows
    ]


def outputs(conn: sqlite3.Connection, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The completed tasks' outputs of these runs, by run: what the REST listing shows as a run's output."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(seqs), 500):
        part = seqs[start : start + 500]
        rows = conn.execute(
            f"SELECT run_seq, readable_id, output FROM tasks WHERE run_seq IN ({','.join('?' * len(part))})"
            " AND status = 'COMPLETED' AND is_on_failure = 0",
            part,
        )
        for seq, rid, output in rows:
            found.setdefault(seq, {})[rid] = None if output is None else json.loads(output)
    return found


def details(conn: sqlite3.Connection, seq: int, input_text: str, metadata_text: str) -> Any:
    """A GetRunDetailsResponse: QUEUED and not done until the run's tasks have settled."""
    state = run_state(conn, seq)
    response = admin_pb2.GetRunDetailsResponse(
        input=input_text.encode(),
        status=state.status if state else "QUEUED",
        done=state is not None and state.status in TERMINAL,
        additional_metadata=metadata_text.encode(),
    )
    for task in task_outcomes(conn, seq) if state else []:
        detail = response.task_runs[task.readable_id]
        detail.readable_id = task.readable_id
        detail.external_id = task.external_id
        detail.status = admin_pb2.RunStatus.Value(task.status)  # type: ignore[assignment]
        if task.error is not None:
            detail.error = task.error
        if task.output is not None:
            detail.output = task.output.encode()
    return response


def finished_event(conn: sqlite3.Connection, run_id: str, seq: int) -> Any | None:
    """The WorkflowRunEvent FINISHED of a settled run (None while it is not): one result per task shown, with
    its output, or its error (failed and cancelled tasks alike, as Hatchet sends them)."""
    state = run_state(conn, seq)
    if state is None or state.status not in TERMINAL:
        return None
    event = dispatcher_pb2.WorkflowRunEvent(
        workflow_run_id=run_id,
        event_type=dispatcher_pb2.WORKFLOW_RUN_EVENT_TYPE_FINISHED,
        event_timestamp=timestamp(state.finished_at),
    )
    for task in task_outcomes(conn, seq):
        result = event.results.add(task_run_external_id=task.external_id, task_name=task.readable_id, job_run_id=run_id)
        if task.output is not None:
            result.output = task.output
        if task.error is not None or task.status == "CANCELLED":
            result.error = task.error or "the task was cancelled"
    return event
