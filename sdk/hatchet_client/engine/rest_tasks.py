"""Hatchet's REST task operations, as the engine serves them (rest.py routes, authenticates and checks the tenant):

- `GET /api/v1/stable/tenants/{tenant}/task-metrics?since=&until=&workflow_ids=&additional_metadata=k:v` ->
  `V1TaskRunMetrics`: `[{status, count}]` for every status (RUNNING with `runningDetailCount: {evicted: 0,
  onWorker}`), in Hatchet's order, counting RUNS created in [since, until] (metrics.py). Metadata pairs match ANY
  (OR), and a key given twice keeps its last value, as Hatchet reads them into a map.
- `POST .../tasks/cancel` and `POST .../tasks/replay`, body `{"externalIds": [uuid, ...]}` (run ids or task
  external ids) or `{"filter": {since, until?, statuses?, workflowIds?, additionalMetadata?}}`, exactly one of
  them. A filter names the newest runs created in [since, until] with any of the statuses (all by default), of any
  of the workflows, with any of the pairs: at most 20,000 runs for a cancel, 1,000 for a replay, as on Hatchet.
  The work goes to the scheduler (dispatch/) in calls of 1,000 ids, each applied in one transaction, serialised
  with every other state change, and done when the answer comes (on Hatchet it is queued and done later).
  Cancel answers `{"ids": [...]}` echoing every id it was given or the filter found, cancelled or not, as Hatchet;
  replay echoes the external ids of the tasks named (dispatch/replay.py).

Not implemented, refused with 400 rather than ignored: `parent_task_external_id` (the engine has no child runs)
and `triggering_event_external_id` (an event's runs carry `hatchet__event_id` in their metadata: filter on it).
Bodies are bounded (16 MiB, 20,000 ids); ids must be UUIDs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hatchet_client.engine import metrics
from hatchet_client.engine.dispatch import events as ev
from hatchet_client.engine.dispatch.scheduler import Scheduler
from hatchet_client.engine.rest_params import (
    RUN_STATUSES,
    BadRequest,
    HttpError,
    dumps,
    last,
    metadata_pair,
    parse_time,
    parse_uuid,
    workflow_names,
)
from hatchet_client.engine.store import RunFilter, RunStore

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_IDS = 20_000
FILTER_LIMITS = {"cancel": 20_000, "replay": 1_000}  # Hatchet's: the runs a filter expands to
IDS_PER_CALL = 1_000
_METRICS_ORDER = ("CANCELLED", "COMPLETED", "FAILED", "QUEUED", "RUNNING")  # Hatchet's StatusToTaskRunMetrics
_NOT_IMPLEMENTED = {
    "parent_task_external_id": "the embedded engine has no child runs",
    # An existing test pins this wording; the runs an event starts carry hatchet__event_id: filter on that instead.
    "triggering_event_external_id": "filter on the hatchet__event_id metadata of the runs an event started",
}
_FILTER_FIELDS = ("since", "until", "statuses", "workflowIds", "additionalMetadata")


def _pairs(name: str, items: list[Any]) -> tuple[tuple[str, str], ...]:
    """Metadata pairs as Hatchet reads them into a map: a key given twice keeps its last value."""
    return tuple(dict(metadata_pair(name, item) for item in items).items())


class TaskOps:
    def __init__(self, store: RunStore, scheduler: Scheduler, tenant_id: str) -> None:
        self._store = store
        self._scheduler = scheduler
        self._tenant_id = tenant_id

    # --- task-metrics ---

    def metrics(self, params: dict[str, list[str]]) -> str:
        for name, why in _NOT_IMPLEMENTED.items():
            if name in params:
                raise BadRequest(f"{name} is not implemented: {why}")
        since_text = last(params, "since")
        if not since_text:
            raise BadRequest("since is required (an RFC 3339 date-time)")
        since = parse_time("since", since_text)
        until_text = last(params, "until")
        until = parse_time("until", until_text) if until_text else None
        pairs = _pairs("additional_metadata", params.get("additional_metadata", []))
        ids = [parse_uuid("workflow_ids", w) for w in params.get("workflow_ids", []) if w]
        names = workflow_names(self._store, self._tenant_id, ids) if ids else None
        counts = self._store.read(lambda conn: metrics.status_counts(conn, since, until, names, pairs))
        rows: list[dict[str, Any]] = []
        for status in _METRICS_ORDER:
            row: dict[str, Any] = {"status": status, "count": counts[status]}
            if status == "RUNNING":
                row["runningDetailCount"] = {"evicted": 0, "onWorker": counts[status]}
            rows.append(row)
        return dumps(rows)

    # --- cancel and replay ---

    def apply(self, op: str, body: bytes) -> str:
        """`op` is cancel or replay; the answer's JSON."""
        ids = self._ids(op, object_body(body))
        if op == "cancel":
            for start in range(0, len(ids), IDS_PER_CALL):
                self._scheduler.call(ev.Cancel(tuple(ids[start : start + IDS_PER_CALL])))
            return dumps({"ids": ids})
        echoed: list[str] = []
        for start in range(0, len(ids), IDS_PER_CALL):
            echoed += self._scheduler.call(ev.Replay(tuple(ids[start : start + IDS_PER_CALL])))
        return dumps({"ids": echoed})

    def _ids(self, op: str, body: dict[str, Any]) -> list[str]:
        unknown = sorted(set(body) - {"externalIds", "filter"})
        if unknown:
            raise BadRequest(f"unknown fields {', '.join(map(repr, unknown))} (known: externalIds, filter)")
        raw_ids = body.get("externalIds")
        flt = body.get("filter")
        if raw_ids is not None and not isinstance(raw_ids, list):
            raise BadRequest("externalIds must be a list of UUIDs")
        if flt is not None and not isinstance(flt, dict):
            raise BadRequest("filter must be an object")
        if raw_ids and flt is not None:
            raise BadRequest("cannot provide both externalIds and filter")
        if not raw_ids and flt is None:
            raise BadRequest("give externalIds (a non-empty list) or filter")
        if raw_ids:
            if len(raw_ids) > MAX_IDS:
                raise BadRequest(f"at most {MAX_IDS} externalIds per request, got {len(raw_ids)}")
            return [parse_uuid("externalIds", ident) for ident in raw_ids]
        assert flt is not None
        return self._store.run_ids(self._run_filter(flt), limit=FILTER_LIMITS[op])

    def _run_filter(self, flt: dict[str, Any]) -> RunFilter:
        unknown = sorted(set(flt) - set(_FILTER_FIELDS))
        if unknown:
            raise BadRequest(
                f"filter: unknown fields {', '.join(map(repr, unknown))} (known: {', '.join(_FILTER_FIELDS)})"
            )
        since = _time(flt, "since")
        if since is None:
            raise BadRequest("filter.since is required (an RFC 3339 date-time)")
        statuses = _list(flt, "statuses")
        bad = [s for s in statuses if s not in RUN_STATUSES]
        if bad:
            raise BadRequest(f"filter.statuses: unknown statuses {bad!r} (known: {', '.join(RUN_STATUSES)})")
        ids = [parse_uuid("filter.workflowIds", w) for w in _list(flt, "workflowIds")]
        return RunFilter(
            workflow_names=workflow_names(self._store, self._tenant_id, ids) if ids else None,
            metadata=_pairs("filter.additionalMetadata", _list(flt, "additionalMetadata")),
            operator="OR",
            since=since,
            until=_time(flt, "until"),
            statuses=statuses or None,
        )


def object_body(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (BadRequest otherwise)."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise BadRequest("the body nests too deep") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value


def _list(obj: dict[str, Any], name: str) -> list[Any]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"filter.{name} must be a list")
    return value


def _time(obj: dict[str, Any], name: str) -> datetime | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"filter.{name} must be an RFC 3339 date-time string")
    return parse_time(f"filter.{name}", value)


def body_length(headers: Any) -> int:
    """The declared length of a request body, within MAX_BODY_BYTES (HttpError otherwise)."""
    if headers.get("Transfer-Encoding"):
        raise HttpError(411, "send the body with a Content-Length (chunked bodies are not accepted)")
    text = headers.get("Content-Length")
    if text is None:
        raise HttpError(411, "a Content-Length is required")
    if not text.strip().isdigit():
        raise HttpError(400, "the Content-Length is not a number")
    length = int(text)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"the body is larger than the {MAX_BODY_BYTES} bytes allowed")
    return length
