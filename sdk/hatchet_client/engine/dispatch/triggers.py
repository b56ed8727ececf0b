"""Crons and scheduled runs, changed and fired by the scheduler inside its transaction (see schema.py's tables).

Firing, in every round, before new runs are materialized (so they get their tasks in the same transaction):

- a scheduled run whose `trigger_at` has come starts one run (its input, metadata and priority) and its row is
  deleted, as Hatchet deletes it (so it leaves the listing, and a later update or delete finds nothing);
- an enabled cron whose `next_at` has come starts one run per firing time passed, with its metadata plus
  `hatchet__cron_name`, `hatchet__cron_expression` and `hatchet__cron_scheduled_at` (the firing time, RFC 3339
  UTC), as Hatchet's ticker adds them; `next_at` moves to the next firing. Firings missed by more than
  MISFIRE_GRACE_SECONDS (the engine was stopped) are skipped, as Hatchet's ticker does not catch up either.

Crons declared in code (a workflow version's `cron_triggers`) are rows of method DEFAULT with an empty name, the
version's `cron_input` and default priority; a new version replaces them (a kept expression keeps its row, and so
its enabled flag, as Hatchet carries it over). Times are epoch seconds on the scheduler's clock.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc

from hatchet_client import cronexpr
from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.dispatch.spawn import Spawn
from hatchet_client.engine.schema import iso_utc
from hatchet_client.engine.validate import RequestError

log = logging.getLogger("hatchet_client.engine")

MISFIRE_GRACE_SECONDS = 60.0
MAX_FIRINGS_PER_ROUND = 1000  # per kind; the rest fire in the next round
DUPLICATE_CRON = "cron trigger with that name-expression pair already exists"  # Hatchet's words
CRON_COLUMNS = (
    "cron_id, workflow_name, name, expression, input, additional_metadata, priority, method, enabled, created_at"
)
SCHEDULE_COLUMNS = "schedule_id, workflow_name, trigger_at, input, additional_metadata, priority, method, created_at"


@functools.lru_cache(maxsize=1024)
def _parsed(expression: str) -> cronexpr.Cron:
    return cronexpr.parse(expression)


def next_firing(expression: str, after: float) -> float:
    """The epoch second of the first firing of `expression` strictly after `after`."""
    return _parsed(expression).next_after(datetime.fromtimestamp(after, UTC)).timestamp()


def next_due(conn: sqlite3.Connection) -> float | None:
    """The earliest time something is to fire (None: nothing)."""
    row = conn.execute(
        "SELECT min(x) FROM (SELECT min(next_at) AS x FROM crons WHERE enabled = 1"
        " UNION ALL SELECT min(trigger_at) FROM schedules)"
    ).fetchone()
    return None if row[0] is None else float(row[0])


# --- changes (REST calls and PutWorkflow) ---


def create_cron(
    conn: sqlite3.Connection,
    now: float,
    workflow_name: str,
    name: str,
    expression: str,
    input_text: str,
    metadata_text: str,
    priority: int | None,
) -> tuple[Any, ...]:
    """A new API cron; its row (CRON_COLUMNS). RequestError (INVALID_ARGUMENT) when the workflow has one of that name and
    expression already."""
    cron_id = str(uuid.uuid4())
    try:
        conn.execute(
            "INSERT INTO crons (cron_id, workflow_name, name, expression, input, additional_metadata, priority,"
            " method, enabled, created_at, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'API', 1, ?, ?)",
            (
                cron_id,
                workflow_name,
                name,
                expression,
                input_text,
                metadata_text,
                priority,
                iso_utc(now),
                next_firing(expression, now),
            ),
        )
    except sqlite3.IntegrityError:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, DUPLICATE_CRON) from None
    return tuple(conn.execute(f"SELECT {CRON_COLUMNS} FROM crons WHERE cron_id = ?", (cron_id,)).fetchone())


def delete_cron(conn: sqlite3.Connection, cron_id: str) -> None:
    if not conn.execute("DELETE FROM crons WHERE cron_id = ?", (cron_id,)).rowcount:
        raise RequestError(grpc.StatusCode.NOT_FOUND, "Cron workflow not found.")


def enable_cron(conn: sqlite3.Connection, now: float, cron_id: str, enabled: bool) -> None:
    """Enabling counts the next firing from now (firings while it was disabled are not made up)."""
    row = conn.execute("SELECT expression, enabled FROM crons WHERE cron_id = ?", (cron_id,)).fetchone()
    if row is None:
        raise RequestError(grpc.StatusCode.NOT_FOUND, "Cron workflow not found.")
    if bool(row[1]) != enabled:
        next_at = next_firing(row[0], now) if enabled else None
        conn.execute("UPDATE crons SET enabled = ?, next_at = ? WHERE cron_id = ?", (int(enabled), next_at, cron_id))


def create_schedule(
    conn: sqlite3.Connection,
    now: float,
    workflow_name: str,
    trigger_at: float,
    input_text: str,
    metadata_text: str,
    priority: int | None,
) -> tuple[Any, ...]:
    """A new scheduled run; its row (SCHEDULE_COLUMNS), as created: one due already fires later in the round."""
    schedule_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO schedules (schedule_id, workflow_name, trigger_at, input, additional_metadata, priority, method,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, 'API', ?)",
        (schedule_id, workflow_name, trigger_at, input_text, metadata_text, priority, iso_utc(now)),
    )
    return _schedule(conn, schedule_id)


def update_schedule(conn: sqlite3.Connection, schedule_id: str, trigger_at: float) -> tuple[Any, ...]:
    """Its row as updated. A schedule that fired is gone (NOT_FOUND), as on Hatchet."""
    changed = conn.execute("UPDATE schedules SET trigger_at = ? WHERE schedule_id = ?", (trigger_at, schedule_id))
    if not changed.rowcount:
        raise RequestError(grpc.StatusCode.NOT_FOUND, "Scheduled workflow not found.")
    return _schedule(conn, schedule_id)


def _schedule(conn: sqlite3.Connection, schedule_id: str) -> tuple[Any, ...]:
    row = conn.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?", (schedule_id,))
    return tuple(row.fetchone())


def delete_schedules(conn: sqlite3.Connection, ids: tuple[str, ...]) -> list[str]:
    """The ids among `ids` that were deleted."""
    return [i for i in ids if conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (i,)).rowcount]


def sync_declared(conn: sqlite3.Connection, now: float, definition: WorkflowDef) -> None:
    """Make the workflow's DEFAULT crons those of its new version."""
    name = definition.name
    existing = {
        expression: cron_id
        for cron_id, expression in conn.execute(
            "SELECT cron_id, expression FROM crons WHERE workflow_name = ? AND method = 'DEFAULT'", (name,)
        )
    }
    input_text = definition.cron_input or "{}"
    for expression in definition.cron_triggers:
        cron_id = existing.pop(expression, None)
        if cron_id is not None:
            conn.execute(
                "UPDATE crons SET input = ?, priority = ? WHERE cron_id = ?",
                (input_text, definition.default_priority, cron_id),
            )
            continue
        conn.execute(
            "INSERT INTO crons (cron_id, workflow_name, name, expression, input, additional_metadata, priority,"
            " method, enabled, created_at, next_at) VALUES (?, ?, '', ?, ?, '{}', ?, 'DEFAULT', 1, ?, ?)",
            (
                str(uuid.uuid4()),
                name,
                expression,
                input_text,
                definition.default_priority,
                iso_utc(now),
                next_firing(expression, now),
            ),
        )
    for cron_id in existing.values():
        conn.execute("DELETE FROM crons WHERE cron_id = ?", (cron_id,))


# --- firing ---


def due(conn: sqlite3.Connection, now: float) -> list[Spawn]:
    """The runs due at `now` (the crons' next firings moved on, the fired schedules deleted)."""
    spawns: list[Spawn] = []
    schedules = conn.execute(
        "SELECT schedule_id, workflow_name, input, additional_metadata, priority FROM schedules"
        " WHERE trigger_at <= ? ORDER BY trigger_at, seq LIMIT ?",
        (now, MAX_FIRINGS_PER_ROUND),
    ).fetchall()
    for schedule_id, workflow_name, input_text, metadata_text, priority in schedules:
        spawns.append(Spawn(workflow_name, input_text, _object(metadata_text), priority))
        conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))
    crons = conn.execute(
        "SELECT cron_id, workflow_name, name, expression, input, additional_metadata, priority, next_at FROM crons"
        " WHERE enabled = 1 AND next_at <= ? ORDER BY next_at LIMIT ?",
        (now, MAX_FIRINGS_PER_ROUND),
    ).fetchall()
    budget = MAX_FIRINGS_PER_ROUND
    for cron_id, workflow_name, name, expression, input_text, metadata_text, priority, next_at in crons:
        slot = float(next_at)
        if now - slot > MISFIRE_GRACE_SECONDS:
            log.info("engine: cron %s (%s) missed its firings before %s: not made up", name, expression, iso_utc(now))
            slot = next_firing(expression, now - MISFIRE_GRACE_SECONDS)
        base = _object(metadata_text)
        while slot <= now and budget > 0:
            at = datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            metadata = {
                **base,
                "hatchet__cron_expression": expression,
                "hatchet__cron_scheduled_at": at,
                "hatchet__cron_name": name,
            }
            spawns.append(Spawn(workflow_name, input_text, metadata, priority))
            budget -= 1
            slot = next_firing(expression, slot)
        conn.execute("UPDATE crons SET next_at = ? WHERE cron_id = ?", (slot, cron_id))
    return spawns


def _object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
