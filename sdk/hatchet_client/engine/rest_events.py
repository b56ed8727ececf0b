"""Hatchet's REST event listing, as the engine serves it from the events EventsService stored (rest.py routes,
authenticates and checks the tenant):

`GET /api/v1/stable/tenants/{tenant}/events?offset&limit&keys&since&until&workflowIds&workflowRunStatuses&eventIds
&additionalMetadata=k:v&scopes` -> `V1EventList{pagination, rows[V1Event]}`.

Followed from Hatchet's handler (`api/v1/server/handlers/v1/events/list.go`), its queries (`ListEvents`,
`CountEvents` and `PopulateEventData` in `pkg/repository/sqlcv1/olap.sql`) and its transformer
(`api/v1/server/oas/transformers/v1/events.go`), as of hatchet-dev/hatchet 89d130f (2026-08):

- `limit` 50 and `since` 24 hours ago by default; `since` and `until` are inclusive;
- `keys`, `scopes`, `eventIds`: any of them, exactly;
- `additionalMetadata`: each `key:value` is split on its FIRST ':' (SplitN, since Hatchet #2336; older engines
  split on every ':'), neither part empty; the pairs make one JSON object (a repeated key: the last one) that the
  event's metadata must contain (`@>`): every pair, as a JSON string;
- `workflowIds`, `workflowRunStatuses` (QUEUED, RUNNING, COMPLETED, CANCELLED, FAILED): events that started a run
  of one of these workflows, and (separately, as Hatchet's two EXISTS) a run now in one of these statuses;
- newest first (`seen_at DESC, id`: the time stored, then the order stored);
- the count stops at 20,000, and so does `num_pages`; `current_page` = offset / limit + 1, `next_page` the same
  on the last page, else one more;
- a row: `metadata{id, createdAt, updatedAt}` (both the time stored), `key`, `tenantId`, `workflowRunSummary`
  (`queued`, `running`, `succeeded`, `failed`, `cancelled`: the event's runs by status), `triggeredRuns`
  (`[{workflowRunId}]`), `additionalMetadata` (`{}` when none), `payload`, `scope` (left out when none), `seenAt`.

An event's runs are the runs that carry its id as `hatchet__event_id` (every run an event starts does:
dispatch/event_runs.py; a run triggered directly with that pair counts too), found through the metadata index.
Differences: a bad parameter is 400 with Hatchet's APIErrors (Hatchet answers 500 for a metadata filter it cannot
split); a limit outside 1..10,000 and a negative offset are refused (Hatchet's query fails on them); `tenantId` is
the tenant's id (Hatchet leaves it empty).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from typing import Any

from hatchet_client.engine.rest_params import (
    RUN_STATUSES,
    BadRequest,
    dumps,
    last,
    parse_int,
    parse_time,
    parse_uuid,
    workflow_names,
)
from hatchet_client.engine.schema import iso_utc
from hatchet_client.engine.store import BUCKETS, RunStore

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
MAX_COUNT = 20_000  # CountEvents counts at most this many
DEFAULT_WINDOW_SECONDS = 24 * 3600  # `since` when not given
_SUMMARY = {
    "QUEUED": "queued",
    "RUNNING": "running",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
}
_METADATA = (
    "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_type(e.additional_metadata) = 'object'"
    " THEN e.additional_metadata ELSE '{}' END) j WHERE j.key = ? AND j.type = 'text' AND j.value = ?)"
)


class EventList:
    """The event listing over the engine's store (read only: it needs no scheduler)."""

    def __init__(self, store: RunStore, tenant_id: str) -> None:
        self._store = store
        self._tenant_id = tenant_id

    def page(self, params: dict[str, list[str]]) -> str:
        limit = parse_int("limit", last(params, "limit") or str(DEFAULT_LIMIT), 1, MAX_LIMIT)
        offset = parse_int("offset", last(params, "offset") or "0", 0, 2**62)
        where, args = self._conditions(params)

        def query(conn: sqlite3.Connection) -> tuple[int, list[Any], list[Any]]:
            total = conn.execute(
                f"{BUCKETS}SELECT count(*) FROM (SELECT 1 FROM events e{where} LIMIT {MAX_COUNT})", args
            ).fetchone()[0]
            rows = conn.execute(
                f"{BUCKETS}SELECT e.event_id, e.key, e.payload, e.additional_metadata, e.scope, e.created_at"
                f" FROM events e{where} ORDER BY e.created_at DESC, e.seq LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            ids = json.dumps([row[0] for row in rows])
            runs = (
                conn.execute(
                    f"{BUCKETS}SELECT x.event_id, r.run_id, coalesce(s.status, 'QUEUED')"
                    f" FROM ({_event_runs(' AND {event} IN (SELECT value FROM json_each(?))')}) x"
                    " JOIN runs r ON r.seq = x.seq LEFT JOIN run_state s ON s.seq = x.seq ORDER BY x.seq",
                    [ids, ids],
                ).fetchall()
                if rows
                else []
            )
            return total, rows, runs

        total, rows, runs = self._store.read(query)
        by_event: dict[str, list[tuple[str, str]]] = {}
        for event_id, run_id, status in runs:
            by_event.setdefault(event_id, []).append((run_id, status))
        current = offset // limit + 1
        pagination = {
            "current_page": current,
            "next_page": current if total < offset + limit else current + 1,
            "num_pages": math.ceil(total / limit),
        }
        shaped = [self._row(row, by_event.get(row[0], [])) for row in rows]
        return dumps({"pagination": pagination, "rows": shaped})

    def _conditions(self, params: dict[str, list[str]]) -> tuple[str, list[Any]]:
        conds: list[str] = []
        args: list[Any] = []
        since_text = last(params, "since")
        since = time.time() - DEFAULT_WINDOW_SECONDS if since_text is None else _seconds("since", since_text)
        conds.append("e.created_at >= ?")
        args.append(iso_utc(since))
        until_text = last(params, "until")
        if until_text is not None:
            conds.append("e.created_at <= ?")
            args.append(iso_utc(_seconds("until", until_text)))
        keys = params.get("keys", [])
        if keys:
            conds.append(f"e.key IN ({', '.join('?' for _ in keys)})")
            args += keys
        scopes = params.get("scopes", [])
        if scopes:
            if "" in scopes:
                raise BadRequest("scopes must not be empty strings")
            conds.append(f"e.scope IN ({', '.join('?' for _ in scopes)})")
            args += scopes
        event_ids = [parse_uuid("eventIds", ident) for ident in params.get("eventIds", [])]
        if event_ids:
            conds.append(f"e.event_id IN ({', '.join('?' for _ in event_ids)})")
            args += event_ids
        pairs: dict[str, str] = {}
        for item in params.get("additionalMetadata", []):
            key, sep, value = item.partition(":")
            if not sep:
                raise BadRequest(f"invalid additional metadata format: {item}, expected key:value")
            if not key or not value:
                raise BadRequest(f"invalid additional metadata format: {item}, key and value must not be empty")
            pairs[key] = value
        for key, value in pairs.items():
            conds.append(_METADATA)
            args += [key, value]
        wanted = [parse_uuid("workflowIds", ident) for ident in params.get("workflowIds", [])]
        if wanted:
            names = workflow_names(self._store, self._tenant_id, wanted)
            cond = f" AND r.workflow_name IN ({', '.join('?' for _ in names)})" if names else " AND 0"
            conds.append(f"e.event_id IN (SELECT event_id FROM ({_event_runs(cond)}))")
            args += [*names, *names]
        statuses = params.get("workflowRunStatuses", [])
        if statuses:
            unknown = sorted(set(statuses) - set(RUN_STATUSES))
            if unknown:
                raise BadRequest(f"unknown workflowRunStatuses: {', '.join(map(repr, unknown))}")
            cond = f" AND coalesce(s.status, 'QUEUED') IN ({', '.join('?' for _ in statuses)})"
            conds.append(f"e.event_id IN (SELECT event_id FROM ({_event_runs(cond)}))")
            args += [*statuses, *statuses]
        return " WHERE " + " AND ".join(conds), args

    def _row(self, row: Any, runs: list[tuple[str, str]]) -> dict[str, Any]:
        event_id, key, payload, metadata_text, scope, created_at = row
        summary = dict.fromkeys(_SUMMARY.values(), 0)
        for _, status in runs:
            if status in _SUMMARY:
                summary[_SUMMARY[status]] += 1
        fields: dict[str, Any] = {
            "metadata": {"id": event_id, "createdAt": created_at, "updatedAt": created_at},
            "key": key,
            "tenantId": self._tenant_id,
            "workflowRunSummary": summary,
            "additionalMetadata": _object(metadata_text),
            "payload": _object(payload),
            "seenAt": created_at,
            "triggeredRuns": [{"workflowRunId": run_id} for run_id, _ in runs],
        }
        if scope:
            fields["scope"] = scope
        return fields


def _event_runs(cond: str) -> str:
    """(event id, run seq) of the runs events started: from the metadata index, then from the runs not indexed yet
    (see store.py). `cond` restricts the runs (`r`, their state `s`; `{event}` is the event id) and its parameters
    are given twice."""
    return (
        "SELECT m.value AS event_id, m.seq AS seq FROM run_metadata m JOIN runs r ON r.seq = m.seq"
        " LEFT JOIN run_state s ON s.seq = m.seq WHERE m.bucket IN (SELECT n FROM buckets)"
        f" AND m.key = 'hatchet__event_id'{cond.format(event='m.value')}"
        " UNION ALL SELECT j.value, r.seq FROM runs r JOIN json_each(r.additional_metadata) j"
        " LEFT JOIN run_state s ON s.seq = r.seq WHERE r.seq > (SELECT indexed_upto FROM index_state)"
        f" AND j.key = 'hatchet__event_id' AND j.type = 'text'{cond.format(event='j.value')}"
    )


def _seconds(name: str, text: str) -> float:
    return parse_time(name, text).timestamp()


def _object(text: str | None) -> dict[str, Any]:
    """A stored JSON object (a value that is not one, or none, is shown as `{}`, as Hatchet stores it)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
