"""Runs -> tasks: each stored run of a workflow that has a version gets its run_state row and its task rows.

The trigger path only appends to `runs` (its speed is the engine's ingest speed); the scheduler follows behind,
`dispatch_state.materialized_upto` saying how far, in the same transaction as the rows it creates, so a crash at
any point neither loses nor doubles a run's tasks. Runs of workflows without a version are passed over, and
picked up when a worker registers that workflow (`backlog`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping

from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.validate import new_run_ids

BATCH_RUNS = 2000


def _create(
    conn: sqlite3.Connection,
    rows: Iterable[tuple[int, str, int | None]],
    latest: Mapping[str, str],
    versions: Mapping[str, WorkflowDef],
    now: float,
) -> int:
    states = []
    tasks = []
    for seq, name, priority in rows:
        version_id = latest.get(name)
        if version_id is None:
            continue
        definition = versions[version_id]
        states.append((seq, version_id))
        prio = priority or definition.default_priority
        for task in definition.tasks:
            queued = not task.parents
            tasks.append(
                (
                    seq,
                    task.readable_id,
                    task.action,
                    0,
                    "QUEUED" if queued else "PENDING",
                    prio,
                    now if queued else None,
                    now if queued else None,
                    now + task.schedule_timeout if queued else None,
                )
            )
        if definition.on_failure is not None:
            task = definition.on_failure
            tasks.append((seq, task.readable_id, task.action, 1, "PENDING", prio, None, None, None))
    if not states:
        return 0
    ids = new_run_ids(len(tasks))
    conn.executemany("INSERT OR IGNORE INTO run_state (seq, version_id, status) VALUES (?, ?, 'QUEUED')", states)
    conn.executemany(
        "INSERT OR IGNORE INTO tasks (run_seq, readable_id, external_id, action, is_on_failure, status, priority,"
        " queued_at, available_at, schedule_deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(t[0], t[1], ids[i], *t[2:]) for i, t in enumerate(tasks)],
    )
    return len(states)


def follow(
    conn: sqlite3.Connection,
    latest: Mapping[str, str],
    versions: Mapping[str, WorkflowDef],
    clock: Callable[[], float],
    limit: int = BATCH_RUNS,
) -> tuple[int, bool]:
    """Materialize the next runs after `materialized_upto` (at most `limit`); (runs given tasks, more to do)."""
    upto = conn.execute("SELECT materialized_upto FROM dispatch_state WHERE id = 1").fetchone()[0]
    top = conn.execute("SELECT coalesce(max(seq), 0) FROM runs").fetchone()[0]
    if top <= upto:
        return 0, False
    high = min(top, upto + limit)
    created = 0
    if latest:
        names = list(latest)
        marks = ",".join("?" * len(names))
        rows = conn.execute(
            f"SELECT seq, workflow_name, priority FROM runs WHERE seq > ? AND seq <= ? AND workflow_name IN ({marks})",
            (upto, high, *names),
        ).fetchall()
        created = _create(conn, rows, latest, versions, clock())
    conn.execute("UPDATE dispatch_state SET materialized_upto = ? WHERE id = 1", (high,))
    return created, high < top


def backlog(
    conn: sqlite3.Connection,
    name: str,
    latest: Mapping[str, str],
    versions: Mapping[str, WorkflowDef],
    clock: Callable[[], float],
) -> int:
    """Give tasks to the runs of `name` already passed over (it had no version then); how many runs."""
    rows = conn.execute(
        "SELECT r.seq, r.workflow_name, r.priority FROM runs r WHERE r.workflow_name = ?"
        " AND r.seq <= (SELECT materialized_upto FROM dispatch_state WHERE id = 1)"
        " AND NOT EXISTS (SELECT 1 FROM run_state s WHERE s.seq = r.seq) ORDER BY r.seq",
        (name,),
    ).fetchall()
    return _create(conn, rows, latest, versions, clock())
