"""Replay (REST `tasks/replay`): a finished run, or a finished run's task and its descendants, runs again under the
same ids, inside the scheduler's transaction like every other state change.

What Hatchet does (internal/services/admin/v1/server.go ReplayTasks, pkg/repository/task.go ReplayTasks), and so
what this does:
- a run id names every task of the run: the whole run runs again from its first tasks (completed ones too: their
  outputs are dropped, as on Hatchet, where a whole-run replay resets every task of the DAG); a task external id
  names that task and its descendants, and the tasks outside them keep their state and outputs;
- each replayed task gets a new attempt: `retry_count` goes up by one (what workers see as the retry count and the
  run listing as `retryCount`; `attempt` is retryCount + 1) and its retry policy starts again (`replay_base`, as
  Hatchet's `app_retry_count = 0`); a task whose parents have completed is QUEUED, the others wait (PENDING);
- the run is QUEUED again, without its times and error, and settles again as its tasks finish;
- a run that is not finished (queued or running) is left alone (Hatchet discards replays of running tasks, and of
  DAGs not fully created; the embedded engine creates every task up front, so it leaves every unfinished run);
- the answer echoes the external ids of the tasks named, finished or not, as Hatchet's handler does (its replays
  are asynchronous and filtered later): a task id echoes itself; a run id echoes its tasks' ids as Hatchet would
  have them: a run of a single-task workflow is that task on Hatchet (same id), so it echoes the run id; a DAG run
  echoes the ids of the tasks Hatchet would have created by then (not those still waiting for their parents, nor
  an on-failure task that never ran), never the run id. Ids that name nothing are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.dispatch.results import TERMINAL
from hatchet_client.engine.dispatch.targets import resolve, run_tasks
from hatchet_client.engine.dispatch.transitions import TaskRow, Transitions

_BROKEN = ("FAILED", "CANCELLED", "SKIPPED")


def replay(tr: Transitions, ids: Sequence[str]) -> list[str]:
    """Replay what `ids` name; the external ids of the tasks named (see the module's description)."""
    echoed: list[str] = []
    for target in resolve(tr, ids):
        if not target.seq:
            continue
        rows = run_tasks(tr, target.seq)
        if not rows:  # a run whose workflow has no version yet has no tasks: it is queued, nothing to replay
            continue
        named = [target.task.readable_id] if target.task is not None else [row.readable_id for row in rows]
        echoed += [target.ident] if target.task is not None else _echo(target.ident, rows)
        status = tr.conn.execute("SELECT status FROM run_state WHERE seq = ?", (target.seq,)).fetchone()
        if status is None or status[0] not in TERMINAL:
            continue  # not finished: left alone
        _reset(tr, rows, tr.versions[rows[0].version_id], _with_descendants(tr.versions[rows[0].version_id], named))
    return echoed


def _echo(run_id: str, rows: list[TaskRow]) -> list[str]:
    """What Hatchet's answer holds for a run named by its run id (see the module's description)."""
    if sum(1 for row in rows if not row.is_on_failure) == 1:
        return [run_id]
    return [
        row.external_id
        for row in rows
        if row.status != "PENDING" and not (row.is_on_failure and row.status == "SKIPPED")
    ]


def _with_descendants(definition: WorkflowDef, named: list[str]) -> set[str]:
    """The named tasks, their descendants, and the on-failure task (so that it runs if they fail again)."""
    todo, chosen = list(named), set(named)
    while todo:
        for child in definition.children(todo.pop()):
            if child.readable_id not in chosen:
                chosen.add(child.readable_id)
                todo.append(child.readable_id)
    if definition.on_failure is not None:
        chosen.add(definition.on_failure.readable_id)
    return chosen


def _reset(tr: Transitions, rows: list[TaskRow], definition: WorkflowDef, chosen: set[str]) -> None:
    """Give the chosen tasks of one finished run a new attempt and put the run back in the queue."""
    before = {row.readable_id: row.status for row in rows}
    after: dict[str, str] = {}
    pending = [task for task in definition.tasks if task.readable_id in chosen]
    while pending:  # in dependency order: a task's new state follows from its parents' new states
        ready = [t for t in pending if all(p in after or p not in chosen for p in t.parents)]
        if not ready:  # cannot happen: PutWorkflow refuses cycles
            raise RuntimeError(f"the tasks of {definition.name} form a cycle")
        for task in ready:
            parents = [after.get(p, before[p]) for p in task.parents]
            if all(state == "COMPLETED" for state in parents):
                after[task.readable_id] = "QUEUED"
            elif any(state in _BROKEN for state in parents):  # a parent outside the replay failed: never runs
                after[task.readable_id] = "SKIPPED"
            else:
                after[task.readable_id] = "PENDING"
            pending.remove(task)
    if definition.on_failure is not None and definition.on_failure.readable_id in chosen:
        after[definition.on_failure.readable_id] = "PENDING"
    now = tr.clock()
    updates = []
    for row in rows:
        state = after.get(row.readable_id)
        if state is None:
            continue
        queued = state == "QUEUED"
        deadline = now + definition.task(row.readable_id).schedule_timeout if queued else None
        updates.append((state, now if queued else None, now if queued else None, deadline, row.task_id))
    tr.conn.executemany(
        "UPDATE tasks SET status = ?, retry_count = retry_count + 1, replay_base = retry_count + 1, output = NULL,"
        " error = NULL, worker_id = NULL, assigned_at = NULL, started_at = NULL, timeout_at = NULL,"
        " finished_at = NULL, queued_at = ?, available_at = ?, schedule_deadline = ? WHERE task_id = ?",
        updates,
    )
    seq = rows[0].run_seq
    tr.conn.execute(
        "UPDATE run_state SET status = 'QUEUED', started_at = NULL, finished_at = NULL, error = NULL,"
        " retry_count = (SELECT max(retry_count) FROM tasks WHERE run_seq = ?) WHERE seq = ?",
        (seq, seq),
    )
    if "QUEUED" not in after.values():  # nothing can run (a parent outside the replay failed): settle again
        tr.settle(seq, rows[0].run_id, rows[0].version_id)
