"""Runs after they were triggered: WorkflowRunRef (wait for a result over gRPC) and the REST run listing."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from hatchet_client.errors import ListRunsError, ResultTimeoutError, RpcError, RunFailedError

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


@dataclass(frozen=True, slots=True)
class TaskDetails:
    """One task of a run. `output` is the decoded JSON output (None until there is one)."""

    readable_id: str
    task_run_id: str
    status: str
    error: str | None
    output: Any


@dataclass(frozen=True, slots=True)
class RunDetails:
    """A run as GetRunDetails reports it. `status`: QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED or EVICTED."""

    run_id: str
    status: str
    done: bool
    input: Any
    additional_metadata: Any
    tasks: Mapping[str, TaskDetails]


class RunDetailsSource(Protocol):
    def get_run_details(self, run_id: str, timeout: float | None = None) -> RunDetails: ...


class WorkflowRunRef:
    """A triggered run. `workflow_run_id` is the id the engine returned."""

    __slots__ = ("_source", "workflow_run_id")

    def __init__(self, workflow_run_id: str, source: RunDetailsSource) -> None:
        self.workflow_run_id = workflow_run_id
        self._source = source

    def details(self, timeout: float | None = None) -> RunDetails:
        """The run's current details (one GetRunDetails call)."""
        return self._source.get_run_details(self.workflow_run_id, timeout)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the run is done and return its tasks' outputs, keyed by task name.

        Polls GetRunDetails (every 50 ms at first, then up to every second). Raises RunFailedError when the run
        failed or was cancelled, ResultTimeoutError when it is not done after `timeout` seconds (None: forever).
        A run the engine does not know yet (NOT_FOUND) is waited for like a queued one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        status: str | None = None
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                details = self.details(timeout=None if remaining is None else max(remaining, 0.05))
            except RpcError as exc:
                if exc.code not in ("NOT_FOUND", "DEADLINE_EXCEEDED"):
                    raise
            else:
                status = details.status
                if details.done or status in TERMINAL_STATUSES:
                    if status == "COMPLETED":
                        return {name: task.output for name, task in details.tasks.items()}
                    errors = {name: task.error for name, task in details.tasks.items() if task.error}
                    raise RunFailedError(self.workflow_run_id, status, errors)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ResultTimeoutError(self.workflow_run_id, timeout or 0.0, status)
                time.sleep(min(delay, remaining))
            else:
                time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def __repr__(self) -> str:
        return f"WorkflowRunRef(workflow_run_id={self.workflow_run_id!r})"

    def __str__(self) -> str:
        return self.workflow_run_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkflowRunRef):
            return NotImplemented
        return self.workflow_run_id == other.workflow_run_id

    def __hash__(self) -> int:
        return hash(self.workflow_run_id)


# -- REST listing -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of the REST run listing. `run_id` is `workflowRunExternalId`, the id a trigger returned."""

    run_id: str
    status: str
    workflow_name: str | None
    display_name: str
    created_at: str
    additional_metadata: Mapping[str, Any]
    input: Any


def _rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _filter_params(
    metadata: Mapping[str, str], operator: str, since: datetime, until: datetime | None
) -> list[tuple[str, str]]:
    if operator not in ("AND", "OR"):
        raise ListRunsError(f"operator must be AND or OR, not {operator!r}")
    params = [("since", _rfc3339(since)), ("only_tasks", "false")]
    if until is not None:
        params.append(("until", _rfc3339(until)))
    for key, value in metadata.items():
        if ":" in key:
            raise ListRunsError(f"cannot filter on metadata key {key!r}: the API splits `key:value` on the first ':'")
        params.append(("additional_metadata", f"{key}:{value}"))
    if metadata:
        params.append(("additional_metadata_operator", operator))
    return params


def _get_json(url: str, token: str, timeout: float, ssl_context: ssl.SSLContext | None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    where = url.split("?", 1)[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl_context) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace").strip()
        raise ListRunsError(f"GET {where}: HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ListRunsError(f"GET {where}: cannot reach the server: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ListRunsError(f"GET {where}: the response is not JSON") from None


def _row(raw: Any, where: str) -> RunRow:
    if not isinstance(raw, dict):
        raise ListRunsError(f"{where}: a row is not an object")
    for key in ("workflowRunExternalId", "status", "createdAt", "displayName"):
        if not isinstance(raw.get(key), str):
            raise ListRunsError(f"{where}: a row lacks the string field {key!r}")
    metadata = raw.get("additionalMetadata")
    name = raw.get("workflowName")
    return RunRow(
        run_id=raw["workflowRunExternalId"],
        status=raw["status"],
        workflow_name=name if isinstance(name, str) else None,
        display_name=raw["displayName"],
        created_at=raw["createdAt"],
        additional_metadata=metadata if isinstance(metadata, dict) else {},
        input=raw.get("input"),
    )


def list_runs(
    server_url: str,
    tenant: str,
    token: str,
    metadata: Mapping[str, str],
    operator: Literal["AND", "OR"] = "AND",
    *,
    since: datetime,
    until: datetime | None = None,
    limit: int = 1000,
    offset: int = 0,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[RunRow]:
    """Every run matching the metadata filters (`AND`: all pairs; `OR`: any), created since `since`, from
    `GET {server_url}/api/v1/stable/tenants/{tenant}/workflow-runs`, fetched `limit` rows per request starting
    at `offset`. Pages are fetched lazily. Offset paging: runs created while paging can shift pages."""
    if limit < 1:
        raise ListRunsError(f"limit must be positive, not {limit}")
    base = f"{_tenant_url(server_url, tenant)}/workflow-runs"
    params = _filter_params(metadata, operator, since, until)
    while True:
        url = base + "?" + urllib.parse.urlencode([*params, ("limit", str(limit)), ("offset", str(offset))])
        page = _get_json(url, token, timeout, ssl_context)
        rows = page.get("rows") if isinstance(page, dict) else None
        if not isinstance(rows, list):
            raise ListRunsError(f"GET {base}: the response has no 'rows' list")
        for raw in rows:
            yield _row(raw, f"GET {base}")
        if not rows:
            return
        offset += len(rows)
        pagination = page.get("pagination")
        pagination = pagination if isinstance(pagination, dict) else {}
        current, pages = pagination.get("current_page"), pagination.get("num_pages")
        if isinstance(current, int) and isinstance(pages, int):
            if current >= pages:
                return
        elif len(rows) < limit:
            return


def list_run_ids(
    server_url: str,
    tenant: str,
    token: str,
    metadata: Mapping[str, str],
    operator: Literal["AND", "OR"] = "AND",
    *,
    since: datetime,
    until: datetime | None = None,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> list[str]:
    """The ids of the runs matching the filters, from `.../workflow-runs/external-ids` (one request)."""
    base = _tenant_url(server_url, tenant)
    url = (
        base + "/workflow-runs/external-ids?" + urllib.parse.urlencode(_filter_params(metadata, operator, since, until))
    )
    ids = _get_json(url, token, timeout, ssl_context)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ListRunsError(f"GET {base}/workflow-runs/external-ids: the response is not a list of run ids")
    return ids


def _tenant_url(server_url: str, tenant: str) -> str:
    """The REST API's base for a tenant."""
    return f"{server_url.rstrip('/')}/api/v1/stable/tenants/{urllib.parse.quote(tenant, safe='')}"
