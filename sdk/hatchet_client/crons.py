"""Cron triggers over Hatchet's REST API, as the official SDK's `hatchet.cron` names them.

- `create`: `POST /api/v1/tenants/{tenant}/workflows/{workflow}/crons {cronName, cronExpression, input,
  additionalMetadata, priority?}`. The expression is checked first (hatchet_client.cronexpr: 5 or 6 fields,
  seconds first, aliases, UTC). Hatchet keeps one cron per (workflow, name, expression): the same name and
  expression again is refused (400), the same name with another expression is a second cron.
- `list`: `GET .../workflows/crons?workflowName=&cronName=&additionalMetadata=k:v` (every page, newest first);
  `get`, `delete`, `set_enabled`: `GET|DELETE|PATCH .../workflows/crons/{id}` (PATCH `{enabled}`: a disabled cron
  does not fire).

Crons declared in code (a workflow's `on_crons`) are listed too, with `method` DEFAULT and an empty name. The
client's namespace is applied to workflow names (a name that already carries it is kept). Each request is bounded
by the client's RestLimits; creates are not sent twice (a retry could make a duplicate), reads, deletes and
PATCHes are retried within the deadline. Every failure raises CronError (or CronExpressionError for an expression
refused before sending).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hatchet_client import cronexpr
from hatchet_client.config import ClientConfig
from hatchet_client.errors import CronError
from hatchet_client.rest import Answer, RestClient
from hatchet_client.rest_pages import (
    check_id,
    json_object,
    metadata_filters,
    page_size,
    pages,
    priority,
    quoted,
    tenant_path,
)

DEFAULT_PAGE_SIZE = 100
CRON_METHODS = ("DEFAULT", "API")


@dataclass(frozen=True, slots=True)
class CronRow:
    """One cron trigger. `name` is empty for a cron declared in code (`method` DEFAULT); `created_at` is the
    engine's RFC 3339 text (None when it does not say); `priority` None when the engine does not say."""

    id: str
    workflow_name: str
    name: str
    expression: str
    input: Mapping[str, Any]
    additional_metadata: Mapping[str, Any]
    enabled: bool
    method: str
    priority: int | None
    created_at: str | None
    workflow_id: str


def cron_row(answer: Answer, raw: Any, where: str) -> CronRow:
    """A `CronWorkflows` object checked field by field."""
    row = answer.as_object(raw, where)
    meta = answer.as_object(row.get("metadata"), f"{where}.metadata")
    enabled = answer.optional_bool(row, "enabled", where)
    if enabled is None:
        answer.fail(f"{where}.enabled is missing or null, not a boolean")
    method = answer.string(row, "method", where)
    if method not in CRON_METHODS:
        answer.fail(f"{where}.method {method[:20]!r} is not DEFAULT or API")
    level = answer.optional_int(row, "priority", where)
    if level is not None and not 1 <= level <= 3:
        answer.fail(f"{where}.priority {level} is not between 1 and 3")
    return CronRow(
        id=answer.string(meta, "id", f"{where}.metadata"),
        workflow_name=answer.string(row, "workflowName", where),
        name=answer.optional_string(row, "name", where) or "",
        expression=answer.string(row, "cron", where),
        input=answer.optional_object(row, "input", where) or {},
        additional_metadata=answer.optional_object(row, "additionalMetadata", where) or {},
        enabled=enabled,
        method=method,
        priority=level,
        created_at=answer.optional_string(meta, "createdAt", f"{where}.metadata"),
        workflow_id=answer.string(row, "workflowId", where),
    )


class CronClient:
    """`hatchet.cron`: the tenant's cron triggers. Thread-safe (each request opens its own connection)."""

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
        cron_name: str,
        expression: str,
        input: Mapping[str, Any],
        additional_metadata: Mapping[str, Any],
        priority: int | None = None,
    ) -> CronRow:
        """A new cron of `workflow_name` (the namespace applied) firing at `expression`, with this input and
        metadata (each run also gets `hatchet__cron_name`, `hatchet__cron_expression`, `hatchet__cron_scheduled_at`)."""
        if not isinstance(workflow_name, str) or not workflow_name:
            raise CronError(f"workflow_name must be a non-empty string, not {workflow_name!r}")
        if not isinstance(cron_name, str) or not cron_name:
            raise CronError(f"cron_name must be a non-empty string, not {cron_name!r} (Hatchet requires a name)")
        cronexpr.parse(expression)
        body: dict[str, Any] = {
            "cronName": cron_name,
            "cronExpression": expression.strip(),
            "input": json_object(input, "input", CronError),
            "additionalMetadata": json_object(additional_metadata, "additional_metadata", CronError),
        }
        level = _priority(priority)
        if level is not None:
            body["priority"] = level
        path = self._path(f"workflows/{quoted(self._config.apply_namespace(workflow_name))}/crons")
        answer = self._client().post(path, body, idempotent=False, error=CronError)
        return cron_row(answer, answer.value, "the answer")

    def list(
        self,
        workflow_name: str | None = None,
        cron_name: str | None = None,
        additional_metadata: Mapping[str, str] | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[CronRow]:
        """Every cron (of `workflow_name`, named `cron_name`, whose metadata has all these string pairs), newest
        first, `limit` per request, fetched lazily. A metadata key or value containing ':' is refused."""
        params: list[tuple[str, str]] = []
        if workflow_name is not None:
            params.append(("workflowName", self._config.apply_namespace(_text(workflow_name, "workflow_name"))))
        if cron_name is not None:
            params.append(("cronName", _text(cron_name, "cron_name")))
        params += metadata_filters(additional_metadata, CronError)
        size = page_size(limit, CronError)
        return pages(self._client(), self._path("workflows/crons"), params, size, cron_row, CronError)

    def get(self, cron_id: str) -> CronRow:
        path = self._path(f"workflows/crons/{check_id(cron_id, 'cron_id', CronError)}")
        answer = self._client().get(path, error=CronError)
        return cron_row(answer, answer.value, "the answer")

    def delete(self, cron_id: str) -> None:
        """Delete the cron (HTTP 204); CronError with status 404 when there is none of that id."""
        path = self._path(f"workflows/crons/{check_id(cron_id, 'cron_id', CronError)}")
        self._client().send("DELETE", path, idempotent=True, error=CronError)

    def set_enabled(self, cron_id: str, enabled: bool) -> None:
        """Enable or disable the cron (`PATCH {enabled}`, HTTP 204): a disabled cron does not fire."""
        if not isinstance(enabled, bool):
            raise CronError(f"enabled must be True or False, not {enabled!r}")
        path = self._path(f"workflows/crons/{check_id(cron_id, 'cron_id', CronError)}")
        self._client().send("PATCH", path, {"enabled": enabled}, idempotent=True, error=CronError)


def _priority(value: object) -> int | None:
    return priority(value, CronError)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise CronError(f"{what} must be a non-empty string, not {value!r}")
    return value
