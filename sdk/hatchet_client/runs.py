"""Runs after they were triggered: WorkflowRunRef (wait for a result over gRPC) and the REST run listing."""

from __future__ import annotations

import ssl
import time
import urllib.parse
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from hatchet_client.errors import ListRunsError, ResultTimeoutError, RpcError, RunFailedError
from hatchet_client.rest import Answer, RestClient, RestLimits

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
RUN_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")  # what the REST API reports (V1TaskStatus)


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
    """One row of the REST run listing. `run_id` is `workflowRunExternalId`, the id a trigger returned.

    `retry_count` is the run's highest task retry count (0 when the engine does not say): it grows with each retry
    and each replay; Hatchet's `attempt` is retry_count + 1. `started_at` and `finished_at` are RFC 3339 texts as
    the engine sent them; `error_message` is the run's error, if it failed or was cancelled."""

    run_id: str
    status: str
    workflow_name: str | None
    display_name: str
    created_at: str
    additional_metadata: Mapping[str, Any]
    input: Any
    error_message: str | None = None
    retry_count: int = 0
    started_at: str | None = None
    finished_at: str | None = None


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


def _row(page: Answer, raw: Any, where: str) -> RunRow:
    row = page.as_object(raw, where)
    metadata = page.optional_object(row, "additionalMetadata", where)
    return RunRow(
        run_id=page.string(row, "workflowRunExternalId", where),
        status=page.string(row, "status", where),
        workflow_name=page.optional_string(row, "workflowName", where),
        display_name=page.string(row, "displayName", where),
        created_at=page.string(row, "createdAt", where),
        additional_metadata=metadata if metadata is not None else {},
        input=page.as_object(row.get("input"), f"{where}.input"),
        error_message=page.optional_string(row, "errorMessage", where),
        retry_count=page.optional_int(row, "retryCount", where) or 0,
        started_at=page.optional_string(row, "startedAt", where),
        finished_at=page.optional_string(row, "finishedAt", where),
    )


def _status_params(statuses: Collection[str] | None) -> list[tuple[str, str]]:
    if statuses is None:
        return []
    if isinstance(statuses, str):
        raise ListRunsError(f"statuses must be a collection of statuses, not the string {statuses!r}")
    unknown = sorted(set(statuses) - set(RUN_STATUSES))
    if unknown:
        raise ListRunsError(f"unknown statuses {', '.join(map(repr, unknown))} (known: {', '.join(RUN_STATUSES)})")
    return [("statuses", status) for status in RUN_STATUSES if status in statuses]


def _pagination(page: Answer, body: dict[str, Any]) -> tuple[int | None, int | None]:
    """(current_page, num_pages) of a listing; either may be absent, neither may be anything but an integer."""
    pagination = page.optional_object(body, "pagination", "the answer")
    if pagination is None:
        return None, None
    page.optional_int(pagination, "next_page", "pagination")
    return (
        page.optional_int(pagination, "current_page", "pagination"),
        page.optional_int(pagination, "num_pages", "pagination"),
    )


def _client(
    server_url: str,
    token: str,
    timeout: float | None,
    limits: RestLimits | None,
    ssl_context: ssl.SSLContext | None,
) -> RestClient:
    return RestClient(server_url, token, limits=(limits or RestLimits()).with_timeout(timeout), ssl_context=ssl_context)


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
    timeout: float | None = None,
    limits: RestLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    statuses: Collection[str] | None = None,
    include_payloads: bool = True,
) -> Iterator[RunRow]:
    """Every run matching the metadata filters (`AND`: all pairs; `OR`: any), created since `since`, from
    `GET {server_url}/api/v1/stable/tenants/{tenant}/workflow-runs`, fetched `limit` rows per request starting
    at `offset`. Pages are fetched lazily. Offset paging: runs created while paging can shift pages.

    `statuses`: only runs in one of these (RUN_STATUSES; None: any). `include_payloads=False` leaves inputs and
    outputs out of the answers (rows then have `input == {}`), which makes large listings much lighter; it is sent
    either way, as Hatchet leaves payloads out when it is not.

    Each request is bounded by `limits` (hatchet_client.rest; `timeout`, when given, replaces its total
    deadline). Every failure, including an answer that is not the documented shape, raises ListRunsError."""
    if limit < 1:
        raise ListRunsError(f"limit must be positive, not {limit}")
    params = _filter_params(metadata, operator, since, until)
    params += _status_params(statuses)
    params.append(("include_payloads", "true" if include_payloads else "false"))
    client = _client(server_url, token, timeout, limits, ssl_context)
    path = f"{_tenant_path(tenant)}/workflow-runs"
    while True:
        page = client.get(path, [*params, ("limit", str(limit)), ("offset", str(offset))], error=ListRunsError)
        body = page.as_object(page.value, "the answer")
        rows = page.as_list(body.get("rows"), "rows")
        current, pages = _pagination(page, body)
        # Check the whole page before yielding any of it: a bad row is a bad answer.
        parsed = [_row(page, raw, f"rows[{i}]") for i, raw in enumerate(rows)]
        yield from parsed
        if not parsed:
            return
        offset += len(parsed)
        if current is not None and pages is not None:
            if current >= pages:
                return
        elif len(parsed) < limit:
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
    timeout: float | None = None,
    limits: RestLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[str]:
    """The ids of the runs matching the filters, from `.../workflow-runs/external-ids` (one request, bounded by
    `limits`; failures raise ListRunsError)."""
    params = _filter_params(metadata, operator, since, until)
    client = _client(server_url, token, timeout, limits, ssl_context)
    page = client.get(f"{_tenant_path(tenant)}/workflow-runs/external-ids", params, error=ListRunsError)
    ids = page.as_list(page.value, "the answer")
    for i, run_id in enumerate(ids):
        if not isinstance(run_id, str):
            page.fail(f"[{i}] is not a run id (a string)")
    return ids


def _tenant_path(tenant: str) -> str:
    """The REST API's path for a tenant's runs."""
    return f"/api/v1/stable/tenants/{urllib.parse.quote(tenant, safe='')}"
