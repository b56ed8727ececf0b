"""What the ids of a cancel or a replay name: a task (its external id) or a whole run (its run id), as on Hatchet.

Looked up in batches (a REST call may name thousands): task ids by the `tasks` unique index, run ids by the run id
lookup table (every bucket probed) and the not yet indexed tail of `runs` (see schema.py), one query per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from hatchet_client.engine.dispatch.transitions import TaskRow, Transitions
from hatchet_client.engine.schema import BUCKET_BITS

_BATCH = 500
_BUCKETS = (
    "WITH RECURSIVE buckets(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM buckets"
    f" WHERE n < (SELECT indexed_upto FROM index_state) >> {BUCKET_BITS}) "
)


class Target(NamedTuple):
    """An id and what it names: `task` is set for a task id; `seq` is the run's (0: the id names nothing)."""

    ident: str
    seq: int
    task: TaskRow | None


def _batches(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + _BATCH] for i in range(0, len(items), _BATCH)]


def run_seqs(tr: Transitions, run_ids: Sequence[str]) -> dict[str, int]:
    """The `runs.seq` of each of these run ids that the engine stored."""
    found: dict[str, int] = {}
    for part in _batches(sorted(set(run_ids))):
        marks = ",".join("?" * len(part))
        rows = tr.conn.execute(
            f"{_BUCKETS}SELECT run_id, seq FROM run_ids WHERE bucket IN (SELECT n FROM buckets) AND run_id IN ({marks})"
            " UNION ALL SELECT run_id, seq FROM runs WHERE seq > (SELECT indexed_upto FROM index_state)"
            f" AND run_id IN ({marks})",
            (*part, *part),
        )
        for run_id, seq in rows:
            found[run_id] = max(found.get(run_id, 0), seq)
    return found


def resolve(tr: Transitions, ids: Sequence[str]) -> list[Target]:
    """What each id names, in the order given (a task id first, as Hatchet's lookup table holds both)."""
    tasks: dict[str, TaskRow] = {}
    for part in _batches(sorted(set(ids))):
        marks = ",".join("?" * len(part))
        for row in tr.tasks_where(f"t.external_id IN ({marks})", tuple(part)):
            tasks[row.external_id] = row
    runs = run_seqs(tr, [ident for ident in ids if ident not in tasks])
    out = []
    for ident in ids:
        task = tasks.get(ident)
        out.append(Target(ident, task.run_seq if task else runs.get(ident, 0), task))
    return out


def run_tasks(tr: Transitions, seq: int) -> list[TaskRow]:
    """Every task of a run, in creation order (the on-failure task last)."""
    return tr.tasks_where("t.run_seq = ? ORDER BY t.task_id", (seq,))
