"""Hatchet's REST crons and scheduled runs, as the engine serves them (rest.py routes, authenticates and checks the
tenant; the scheduler applies every change and fires them: dispatch/triggers.py):

- `POST /api/v1/tenants/{tenant}/workflows/{workflow}/crons {cronName, cronExpression, input, additionalMetadata,
  priority?}` -> CronWorkflows; `GET .../workflows/crons?offset&limit&workflowId&workflowName&cronName&
  additionalMetadata=k:v&orderByField=name|createdAt&orderByDirection` -> `{rows, pagination}`;
  `GET|DELETE|PATCH {enabled} .../workflows/crons/{id}` (DELETE and PATCH answer 204, as Hatchet);
- `POST .../workflows/{workflow}/scheduled {triggerAt, input, additionalMetadata, priority?}` -> ScheduledWorkflows;
  `GET .../workflows/scheduled?offset&limit&workflowId&additionalMetadata&statuses&orderByField=triggerAt|createdAt
  &orderByDirection`; `GET|DELETE|PATCH {triggerAt} .../workflows/scheduled/{id}`;
  `POST .../workflows/scheduled/bulk-delete {scheduledWorkflowRunIds: [<= 500]}` -> `{deletedIds, errors}`.

Hatchet's rules: a cron needs a name, and one (workflow, name, expression) exists once (400 otherwise); a workflow
the engine does not know is 400 `workflow not found` (in recorder mode every name is accepted, as for triggers);
priority defaults to 1. A fired schedule is deleted, so it leaves the listing and is not found any more; `statuses`
filters on the status of a fired schedule's run, so only SCHEDULED (those not fired yet) lists anything. Metadata
filters split `key:value` on every ':' and want two parts. Stricter than Hatchet: an expression that does not
parse is refused (Hatchet stores it and drops it when its ticker cannot parse it), unknown body fields are refused.
Not implemented, refused: `parentWorkflowRunId`, `parentStepRunId` (no child runs), bulk-delete by `filter`,
`bulk-update`, and triggering a cron or a schedule now.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import grpc

from hatchet_client import cronexpr
from hatchet_client.engine.dispatch import events as ev
from hatchet_client.engine.dispatch.scheduler import Scheduler
from hatchet_client.engine.dispatch.triggers import CRON_COLUMNS, SCHEDULE_COLUMNS
from hatchet_client.engine.rest_params import BadRequest, HttpError, dumps, last, parse_int, parse_time, parse_uuid
from hatchet_client.engine.rest_tasks import object_body
from hatchet_client.engine.store import RunStore, workflow_id
from hatchet_client.engine.validate import RequestError
from hatchet_client.errors import CronExpressionError

Answer = tuple[int, str]
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
BULK_DELETE_MAX = 500
_CRON_FIELDS = ("cronName", "cronExpression", "input", "additionalMetadata", "priority")
_SCHEDULE_FIELDS = ("triggerAt", "input", "additionalMetadata", "priority")
_SCHEDULED_STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "QUEUED", "SCHEDULED")
_CRON_ORDER = {"name": "workflow_name", "createdAt": "created_at"}
_SCHEDULE_ORDER = {"triggerAt": "trigger_at", "createdAt": "created_at"}
_CODES = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.PERMISSION_DENIED: 403}


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TriggerOps:
    def __init__(self, store: RunStore, scheduler: Scheduler, tenant_id: str) -> None:
        self._store = store
        self._scheduler = scheduler
        self._tenant_id = tenant_id

    def handle(
        self, kind: str, method: str, route: dict[str, str], params: dict[str, list[str]], body: Callable[[], bytes]
    ) -> Answer:
        """One request: `kind` is the route (crons, cron, workflow-crons, schedules, schedule, workflow-schedules,
        bulk-delete), `route` its path parameters."""
        try:
            return self._handle(kind, method, route, params, body)
        except RequestError as exc:
            raise HttpError(_CODES.get(exc.code, 400), exc.message) from None

    def _handle(
        self, kind: str, method: str, route: dict[str, str], params: dict[str, list[str]], body: Callable[[], bytes]
    ) -> Answer:
        if kind == "workflow-crons":
            return 200, self._create_cron(self._workflow(route["workflow"]), object_body(body()))
        if kind == "workflow-schedules":
            return 200, self._create_schedule(self._workflow(route["workflow"]), object_body(body()))
        if kind == "crons":
            return 200, self._list("crons", params)
        if kind == "schedules":
            return 200, self._list("schedules", params)
        if kind == "bulk-delete":
            return 200, self._bulk_delete(object_body(body()))
        ident = parse_uuid("the id", route["id"])
        if kind == "cron":
            if method == "DELETE":
                self._scheduler.call(ev.DeleteCron(ident))
                return 204, ""
            if method == "PATCH":
                enabled = _only(object_body(body()), "the body", ("enabled",)).get("enabled")
                if enabled is not None:
                    if not isinstance(enabled, bool):
                        raise BadRequest("enabled must be true or false")
                    self._scheduler.call(ev.EnableCron(ident, enabled))
                return 204, ""
            return 200, self._one("crons", ident)
        if method == "DELETE":
            if not self._scheduler.call(ev.DeleteSchedules((ident,))):
                raise HttpError(404, "Scheduled workflow not found.")
            return 204, ""
        if method == "PATCH":
            fields = _only(object_body(body()), "the body", ("triggerAt",))
            row = self._scheduler.call(ev.UpdateSchedule(ident, _time(fields, "triggerAt")))
            return 200, self._shaped("schedules", row)
        return 200, self._one("schedules", ident)

    # --- creating ---

    def _workflow(self, raw: str) -> str:
        name = unquote(raw)
        known = self._store.known_workflows()
        if known and name not in known:
            raise BadRequest("workflow not found")
        return name

    def _create_cron(self, workflow: str, body: dict[str, Any]) -> str:
        _only(body, "the body", _CRON_FIELDS)
        name = body.get("cronName")
        if not isinstance(name, str) or not name:
            raise BadRequest("cron name is required")
        expression = body.get("cronExpression")
        if not isinstance(expression, str):
            raise BadRequest("cronExpression is required (a cron expression)")
        try:
            expression = cronexpr.parse(expression).expression
        except CronExpressionError as exc:
            raise BadRequest(f"Invalid cron expression: {exc}") from None
        row = self._scheduler.call(
            ev.CreateCron(
                workflow, name, expression, _json(body, "input"), _json(body, "additionalMetadata"), _priority(body)
            )
        )
        return self._shaped("crons", row)

    def _create_schedule(self, workflow: str, body: dict[str, Any]) -> str:
        _only(body, "the body", _SCHEDULE_FIELDS)
        call = ev.CreateSchedule(
            workflow, _time(body, "triggerAt"), _json(body, "input"), _json(body, "additionalMetadata"), _priority(body)
        )
        return self._shaped("schedules", self._scheduler.call(call))

    def _bulk_delete(self, body: dict[str, Any]) -> str:
        if body.get("filter") is not None:
            raise BadRequest(
                "bulk-delete by filter is not implemented by the embedded engine: give scheduledWorkflowRunIds"
            )
        _only(body, "the body", ("scheduledWorkflowRunIds", "filter"))
        ids = body.get("scheduledWorkflowRunIds")
        if not isinstance(ids, list) or not ids:
            raise BadRequest("Provide scheduledWorkflowRunIds or filter.")
        if len(ids) > BULK_DELETE_MAX:
            raise BadRequest(f"scheduledWorkflowRunIds: at most {BULK_DELETE_MAX} ids, got {len(ids)}")
        wanted = [parse_uuid("scheduledWorkflowRunIds", i) for i in ids]
        deleted = set(self._scheduler.call(ev.DeleteSchedules(tuple(dict.fromkeys(wanted)))))
        errors = [
            {"id": i, "error": "Failed to delete scheduled workflow."}
            for i in dict.fromkeys(wanted)
            if i not in deleted
        ]
        return dumps({"deletedIds": [i for i in dict.fromkeys(wanted) if i in deleted], "errors": errors})

    # --- reading ---

    def _one(self, table: str, ident: str) -> str:
        key = "cron_id" if table == "crons" else "schedule_id"
        columns = CRON_COLUMNS if table == "crons" else SCHEDULE_COLUMNS
        row = self._store.read(
            lambda conn: conn.execute(f"SELECT {columns} FROM {table} WHERE {key} = ?", (ident,)).fetchone()
        )
        if row is None:
            raise HttpError(
                404, "Scheduled workflow not found." if table == "schedules" else "Cron workflow not found."
            )
        versions = self._store.read(_latest_versions)
        return dumps(self._cron(row, versions) if table == "crons" else self._schedule(row, versions))

    def _shaped(self, table: str, row: Any) -> str:
        versions = self._store.read(_latest_versions)
        return dumps(self._cron(row, versions) if table == "crons" else self._schedule(row, versions))

    def _list(self, table: str, params: dict[str, list[str]]) -> str:
        for name in ("parentWorkflowRunId", "parentStepRunId"):
            if name in params:
                raise BadRequest(f"{name} is not implemented: the embedded engine has no child runs")
        limit = parse_int("limit", last(params, "limit") or str(DEFAULT_LIMIT), 1, MAX_LIMIT)
        offset = parse_int("offset", last(params, "offset") or "0", 0, 2**62)
        order = _CRON_ORDER if table == "crons" else _SCHEDULE_ORDER
        field = last(params, "orderByField") or ("createdAt" if table == "crons" else "triggerAt")
        direction = (last(params, "orderByDirection") or "DESC").upper()
        if field not in order:
            raise BadRequest(f"orderByField must be one of {', '.join(order)}")
        if direction not in ("ASC", "DESC"):
            raise BadRequest("orderByDirection must be ASC or DESC")
        conds, args = self._conditions(table, params)
        if table == "schedules":
            statuses = [s for s in params.get("statuses", []) if s]
            bad = sorted(set(statuses) - set(_SCHEDULED_STATUSES))
            if bad:
                raise BadRequest(f"unknown statuses {bad!r} (known: {', '.join(_SCHEDULED_STATUSES)})")
            if statuses and "SCHEDULED" not in statuses:
                conds.append("0")  # the runs of fired schedules are not listed: fired schedules are deleted
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        columns = CRON_COLUMNS if table == "crons" else SCHEDULE_COLUMNS

        def query(conn: sqlite3.Connection) -> tuple[int, list[Any], dict[str, str]]:
            total = conn.execute(f"SELECT count(*) FROM {table}{where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT {columns} FROM {table}{where} ORDER BY {order[field]} {direction}, seq LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            return total, rows, _latest_versions(conn)

        total, rows, versions = self._store.read(query)
        shape = self._cron if table == "crons" else self._schedule
        pages = math.ceil(total / limit)
        current = 1 + math.ceil(offset / limit)
        pagination = {
            "current_page": current,
            "next_page": current if current == pages else current + 1,
            "num_pages": pages,
        }
        return dumps({"rows": [shape(row, versions) for row in rows], "pagination": pagination})

    def _conditions(self, table: str, params: dict[str, list[str]]) -> tuple[list[str], list[Any]]:
        conds: list[str] = []
        args: list[Any] = []
        wanted = [parse_uuid("workflowId", w) for w in params.get("workflowId", []) if w]
        if wanted:
            names = self._store.read(
                lambda conn: [r[0] for r in conn.execute(f"SELECT DISTINCT workflow_name FROM {table}")]
            )
            matching = [n for n in names if workflow_id(self._tenant_id, n) in wanted]
            conds.append(f"workflow_name IN ({', '.join('?' for _ in matching)})" if matching else "0")
            args += matching
        if table == "crons":
            for param, column in (("workflowName", "workflow_name"), ("cronName", "name")):
                value = last(params, param)
                if value is not None:
                    conds.append(f"{column} = ?")
                    args.append(value)
        pairs: dict[str, str] = {}
        for item in params.get("additionalMetadata", []):
            parts = item.split(":")
            if len(parts) != 2:
                raise BadRequest("Additional metadata filters must be in the format key:value.")
            pairs[parts[0]] = parts[1]
        for key, value in pairs.items():
            conds.append(
                "EXISTS (SELECT 1 FROM json_each(additional_metadata) j"
                " WHERE j.key = ? AND j.type = 'text' AND j.value = ?)"
            )
            args += [key, value]
        return conds, args

    def _common(self, ident: str, name: str, created_at: str, versions: dict[str, str]) -> dict[str, Any]:
        wid = workflow_id(self._tenant_id, name)
        return {
            "metadata": {"id": ident, "createdAt": created_at, "updatedAt": created_at},
            "tenantId": self._tenant_id,
            "workflowVersionId": versions.get(name, wid),
            "workflowId": wid,
            "workflowName": name,
        }

    def _cron(self, row: Any, versions: dict[str, str]) -> dict[str, Any]:
        ident, name, cron_name, expression, input_text, metadata_text, priority, method, enabled, created_at = row
        return {
            **self._common(ident, name, created_at, versions),
            "cron": expression,
            "name": cron_name,
            "input": json.loads(input_text),
            "additionalMetadata": json.loads(metadata_text),
            "enabled": bool(enabled),
            "method": method,
            "priority": priority or 1,
        }

    def _schedule(self, row: Any, versions: dict[str, str]) -> dict[str, Any]:
        ident, name, trigger_at, input_text, metadata_text, priority, method, created_at = row
        return {
            **self._common(ident, name, created_at, versions),
            "triggerAt": _rfc3339(trigger_at),
            "input": json.loads(input_text),
            "additionalMetadata": json.loads(metadata_text),
            "method": method,
            "priority": priority or 1,
        }


def _latest_versions(conn: sqlite3.Connection) -> dict[str, str]:
    """Each workflow's newest version id (a workflow without one is shown with its id as its version's)."""
    return {name: vid for name, vid in conn.execute("SELECT name, version_id FROM workflow_versions ORDER BY seq")}


def _only(body: dict[str, Any], what: str, known: tuple[str, ...]) -> dict[str, Any]:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise BadRequest(f"{what}: unknown fields {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    return body


def _json(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object")
    text = json.dumps(value, separators=(",", ":"))
    if "\\u0000" in text:
        raise BadRequest(f"encoded jsonb contains invalid null character \\u0000 in field `{name}`")
    return text


def _priority(body: dict[str, Any]) -> int:
    value = body.get("priority")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3:
        raise BadRequest(f"priority must be an integer between 1 and 3, not {value!r}")
    return value


def _time(body: dict[str, Any], name: str) -> float:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name} is required (an RFC 3339 date-time)")
    return parse_time(name, value).timestamp()
