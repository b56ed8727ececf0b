"""Runs the engine starts itself (crons, schedules, events), appended to `runs` inside the scheduler's transaction.

They are stored exactly as the writer stores triggered runs (writer.py): consecutive `seq`, one `commits` row
whose `received_at` never goes back (at least the last commit's: the writer and the scheduler take turns on the
database), the workflow name in `workflows`, and a `traceparent` first in the metadata, as on every run. The
scheduler's materialize step, later in the same round, gives them their tasks.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from hatchet_client.engine.errors import EngineError
from hatchet_client.engine.schema import iso_utc
from hatchet_client.engine.validate import RunRow, new_run_ids, new_trace_hex, traceparent

_INSERT_RUN = "INSERT INTO runs (run_id, workflow_name, input, additional_metadata, priority) VALUES (?, ?, ?, ?, ?)"


class Spawn(NamedTuple):
    """One run to start."""

    workflow_name: str
    input_text: str  # a JSON object's text
    metadata: Mapping[str, Any]
    priority: int | None  # None: the workflow's default


def append_runs(conn: sqlite3.Connection, spawns: Sequence[Spawn]) -> list[str]:
    """Store the runs (the caller's transaction is open); their run ids, in order."""
    if not spawns:
        return []
    ids = new_run_ids(len(spawns))
    trace_hex = new_trace_hex(len(spawns))
    rows: list[RunRow] = []
    for i, (name, input_text, metadata, priority) in enumerate(spawns):
        meta = dict(metadata)
        if "traceparent" not in meta:
            meta = {"traceparent": traceparent(trace_hex, i), **meta}
        rows.append((ids[i], name, input_text, json.dumps(meta, separators=(",", ":")), priority))
    base = conn.execute("SELECT coalesce(max(seq), 0) FROM runs").fetchone()[0]
    conn.executemany(_INSERT_RUN, rows)
    last = conn.execute("SELECT max(seq) FROM runs").fetchone()[0]
    if last != base + len(rows):
        raise EngineError(f"run sequence gap: expected {base + len(rows)}, found {last}")
    previous = conn.execute("SELECT received_at FROM commits ORDER BY first_seq DESC LIMIT 1").fetchone()
    now = time.time()
    if previous is not None:
        now = max(now, datetime.fromisoformat(previous[0]).timestamp())
    conn.execute(
        "INSERT INTO commits (first_seq, last_seq, received_at) VALUES (?, ?, ?)", (base + 1, last, iso_utc(now))
    )
    conn.executemany("INSERT OR IGNORE INTO workflows (name) VALUES (?)", [(name,) for name in {r[1] for r in rows}])
    return ids
