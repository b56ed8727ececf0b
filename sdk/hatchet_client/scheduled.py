"""Scheduled runs (one run of a workflow at a given time) over Hatchet's REST API, as the official SDK's
`hatchet.scheduled` names them.

- `create`: `POST /api/v1/tenants/{tenant}/workflows/{workflow}/scheduled {triggerAt, input, additionalMetadata,
  priority?}`;
- `list`: `GET .../workflows/scheduled?workflowId=&additionalMetadata=k:v&statuses=` (every page, latest trigger
  time first). Hatchet deletes a schedule when it fires, so the listing shows the schedules still to fire;
  `statuses` filters on the run status of fired ones (SCHEDULED: those not fired yet);
- `get`, `update` (`PATCH {triggerAt}`: only before it fires), `delete`: `GET|PATCH|DELETE .../scheduled/{id}`;
- `bulk_delete`: `POST .../workflows/scheduled/bulk-delete {scheduledWorkflowRunIds}`, at most 500 ids per request
  (Hatchet's bound): longer lists are sent in batches.

The client's namespace is applied to workflow names. Each request is bounded by the client's RestLimits; creates
are not sent twice, the rest is retried within the deadline. Every failure raises ScheduleError.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hatchet_client.config import ClientConfig
from hatchet_client.errors import ListWorkflowsError, ScheduleError
from hatchet_client.rest import Answer, RestClient
from hatchet_client.rest_pages import (
    check_id,
    json_object,
    metadata_filters,
    page_size,
    pages,
    priority,
    quoted,
    rfc3339,
    tenant_path,
)
from hatchet_client.workflows import list_workflows, search_term

DEFAULT_PAGE_SIZE = 100
BULK_DELETE_MAX = 500  # Hatchet's bound on scheduledWorkflowRunIds
SCHEDULED_STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "QUEUED", "SCHEDULED")
SCHEDULE_METHODS = ("DEFAULT", "API")


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    """One scheduled run. `run_id` and `run_status` say what became of it once fired (None before, and on
    Hatchet, which deletes a schedule when it fires); `created_at` is the engine's RFC 3339 text."""

    id: str
    workflow_name: str
    trigger_at: datetime
    input: Mapping[str, Any]
    additional_metadata: Mapping[str, Any]
    run_id: str | None
    run_status: str | None
    method: str
    priority: int | None
    created_at: str | None
    workflow_id: str


@dataclass(frozen=True, slots=True)
class BulkDeleteResult:
    """What a bulk delete did: the ids deleted, and for the others the engine's reason (id None: not said)."""

    deleted: tuple[str, ...]
    errors: tuple[tuple[str | None, str], ...]


def scheduled_row(answer: Answer, raw: Any, where: str) -> ScheduledRow:
    """A `ScheduledWorkflows` object checked field by field."""
    row = answer.as_object(raw, where)
    meta = answer.as_object(row.get("metadata"), f"{where}.metadata")
    method = answer.string(row, "method", where)
    if method not in SCHEDULE_METHODS:
        answer.fail(f"{where}.method {method[:20]!r} is not DEFAULT or API")
    level = answer.optional_int(row, "priority", where)
    if level is not None and not 1 <= level <= 3:
        answer.fail(f"{where}.priority {level} is not between 1 and 3")
    return ScheduledRow(
        id=answer.string(meta, "id", f"{where}.metadata"),
        workflow_name=answer.string(row, "workflowName", where),
        trigger_at=answer.timestamp(row, "triggerAt", where),
        input=answer.optional_object(row, "input", where) or {},
        additional_metadata=answer.optional_object(row, "additionalMetadata", where) or {},
        run_id=answer.optional_string(row, "workflowRunId", where),
        run_status=answer.optional_string(row, "workflowRunStatus", where),
        method=method,
        priority=level,
        created_at=answer.optional_string(meta, "createdAt", f"{where}.metadata"),
        workflow_id=answer.string(row, "workflowId", where),
    )


class ScheduledClient:
    """`hatchet.scheduled`: the tenant's scheduled runs. Thread-safe (each request opens its own connection)."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config

    def _client(self) -> RestClient:
        c = self._config
        return RestClient(c.server_url, c.token, limits=c.rest_limits, ssl_context=c.rest_ssl_context())

    def _path(self, rest: str) -> str:
        return tenant_path(self._config.tenant_id, rest)

    def create(
        self,
        workflow_name: str,
        trigger_at: datetime,
        input: Mapping[str, Any],
        additional_metadata: Mapping[str, Any],
        priority: int | None = None,
    ) -> ScheduledRow:
        """One run of `workflow_name` (the namespace applied) at `trigger_at` (naive: UTC), with this input and
        metadata. A time in the past fires at once."""
        if not isinstance(workflow_name, str) or not workflow_name:
            raise ScheduleError(f"workflow_name must be a non-empty string, not {workflow_name!r}")
        body: dict[str, Any] = {
            "triggerAt": rfc3339(trigger_at, "trigger_at", ScheduleError),
            "input": json_object(input, "input", ScheduleError),
            "additionalMetadata": json_object(additional_metadata, "additional_metadata", ScheduleError),
        }
        level = _priority(priority)
        if level is not None:
            body["priority"] = level
        path = self._path(f"workflows/{quoted(self._config.apply_namespace(workflow_name))}/scheduled")
        answer = self._client().post(path, body, idempotent=False, error=ScheduleError)
        return scheduled_row(answer, answer.value, "the answer")

    def list(
        self,
        workflow_name: str | None = None,
        additional_metadata: Mapping[str, str] | None = None,
        statuses: Collection[str] | None = None,
        *,
        workflow_id: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[ScheduledRow]:
        """Every scheduled run (of `workflow_name`, or of the workflow `workflow_id`; whose metadata has all these
        string pairs; in one of `statuses`), latest trigger time first, `limit` per request. The listing filters
        by workflow id: a name is looked up first in the workflow listing (exactly; none found: nothing listed)."""
        params: list[tuple[str, str]] = []
        size = page_size(limit, ScheduleError)
        if workflow_name is not None and workflow_id is not None:
            raise ScheduleError("give workflow_name or workflow_id, not both")
        if workflow_id is not None:
            params.append(("workflowId", check_id(workflow_id, "workflow_id", ScheduleError)))
        elif workflow_name is not None:
            found = self._workflow_id(workflow_name)
            if found is None:
                return iter(())
            params.append(("workflowId", found))
        params += metadata_filters(additional_metadata, ScheduleError)
        params += _status_params(statuses)
        return pages(self._client(), self._path("workflows/scheduled"), params, size, scheduled_row, ScheduleError)

    def get(self, scheduled_id: str) -> ScheduledRow:
        answer = self._client().get(self._one(scheduled_id), error=ScheduleError)
        return scheduled_row(answer, answer.value, "the answer")

    def update(self, scheduled_id: str, trigger_at: datetime) -> ScheduledRow:
        """Move the run to `trigger_at`; refused (400) once it has fired, or for a schedule declared in code."""
        body = {"triggerAt": rfc3339(trigger_at, "trigger_at", ScheduleError)}
        answer = self._client().send("PATCH", self._one(scheduled_id), body, idempotent=True, error=ScheduleError)
        return scheduled_row(answer, answer.value, "the answer")

    def delete(self, scheduled_id: str) -> None:
        """Delete the scheduled run (HTTP 204); ScheduleError with status 404 when there is none of that id."""
        self._client().send("DELETE", self._one(scheduled_id), idempotent=True, error=ScheduleError)

    def bulk_delete(self, scheduled_ids: Sequence[str], *, batch: int = BULK_DELETE_MAX) -> BulkDeleteResult:
        """Delete these scheduled runs, `batch` (<= 500) ids per request, in order; every id is checked before the
        first request. When a batch fails after others were answered, the error's `deleted` holds their ids."""
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= BULK_DELETE_MAX:
            raise ScheduleError(f"batch must be an integer between 1 and {BULK_DELETE_MAX}, not {batch!r}")
        if isinstance(scheduled_ids, str):
            raise ScheduleError("scheduled_ids must be a sequence of ids, not one string")
        ids = [check_id(ident, f"scheduled_ids[{i}]", ScheduleError) for i, ident in enumerate(scheduled_ids)]
        client = self._client()
        path = self._path("workflows/scheduled/bulk-delete")
        deleted: list[str] = []
        errors: list[tuple[str | None, str]] = []
        for start in range(0, len(ids), batch):
            body = {"scheduledWorkflowRunIds": ids[start : start + batch]}
            try:
                answer = client.post(path, body, idempotent=True, error=ScheduleError)
            except ScheduleError as exc:
                if not deleted:
                    raise
                raise ScheduleError(
                    f"{exc.problem} ({len(deleted)} deleted by the requests before this one)",
                    reason=exc.reason,
                    url=exc.url,
                    method=exc.method,
                    status=exc.status,
                    deleted=deleted,
                ) from None
            done, failed = _bulk_answer(answer)
            deleted += done
            errors += failed
        return BulkDeleteResult(tuple(deleted), tuple(errors))

    def _one(self, scheduled_id: str) -> str:
        return self._path(f"workflows/scheduled/{check_id(scheduled_id, 'scheduled_id', ScheduleError)}")

    def _workflow_id(self, workflow_name: str) -> str | None:
        if not isinstance(workflow_name, str) or not workflow_name:
            raise ScheduleError(f"workflow_name must be a non-empty string, not {workflow_name!r}")
        c = self._config
        name = c.apply_namespace(workflow_name)
        try:
            for row in list_workflows(
                c.server_url,
                c.tenant_id,
                c.token,
                search_term(name),
                limits=c.rest_limits,
                ssl_context=c.rest_ssl_context(),
            ):
                if row.name == name:
                    return row.workflow_id
        except ListWorkflowsError as exc:
            raise ScheduleError(
                f"looking up workflow {name!r}: {exc.problem}",
                reason=exc.reason,
                url=exc.url,
                method=exc.method,
                status=exc.status,
            ) from None
        return None


def _bulk_answer(answer: Answer) -> tuple[list[str], list[tuple[str | None, str]]]:
    body = answer.as_object(answer.value, "the answer")
    deleted = answer.as_list(body.get("deletedIds", []), "deletedIds")
    for i, ident in enumerate(deleted):
        if not isinstance(ident, str):
            answer.fail(f"deletedIds[{i}] is not an id (a string)")
    errors: list[tuple[str | None, str]] = []
    for i, raw in enumerate(answer.as_list(body.get("errors", []), "errors")):
        item = answer.as_object(raw, f"errors[{i}]")
        errors.append(
            (answer.optional_string(item, "id", f"errors[{i}]"), answer.string(item, "error", f"errors[{i}]"))
        )
    return list(deleted), errors


def _status_params(statuses: Collection[str] | None) -> list[tuple[str, str]]:
    if statuses is None:
        return []
    if isinstance(statuses, str):
        raise ScheduleError(f"statuses must be a collection of statuses, not the string {statuses!r}")
    unknown = sorted(set(statuses) - set(SCHEDULED_STATUSES))
    if unknown:
        raise ScheduleError(f"unknown statuses {unknown!r} (known: {', '.join(SCHEDULED_STATUSES)})")
    return [("statuses", s) for s in SCHEDULED_STATUSES if s in statuses]


def _priority(value: object) -> int | None:
    return priority(value, ScheduleError)
