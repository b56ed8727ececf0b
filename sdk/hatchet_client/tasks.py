"""Runs after they were triggered, in bulk, over Hatchet's REST task API: how many are in each status, cancel them,
replay them.

- `run_metrics`: `GET /api/v1/stable/tenants/{tenant}/task-metrics` -> how many runs created in [since, until]
  are in each status. Hatchet counts runs (one per workflow run) and combines metadata pairs with OR: a run with
  ANY of the pairs counts; pass one pair (a stamp) to count exactly the runs that carry it.
- `cancel_runs`: `POST .../tasks/cancel {"externalIds": [...]}`: queued runs are cancelled, running ones get a
  cancel on their worker. The answer echoes every id sent (Hatchet echoes them whether or not there was anything
  left to cancel).
- `replay_runs`: `POST .../tasks/replay {"externalIds": [...]}`: a finished run (failed, cancelled, or completed)
  runs again under the same run id: every task of it gets a new attempt (its retry count goes up by one, and so
  does the run's `retryCount` in the listing) and its retries again; unfinished runs are left alone. The answer
  echoes TASK ids, as Hatchet's does: a run of a single-task workflow echoes its run id (on Hatchet that run is
  its task), a DAG run the ids of its tasks, not its run id.

Ids (run ids or task external ids, UUIDs) are sent `batch` per request, in order; each request is bounded by the
RestLimits and retried on 429/502/503/504 and connection resets within its deadline: cancelling or replaying the
same ids again has no further effect (a replayed run is unfinished, and a replay leaves unfinished runs alone;
on Hatchet a queued task replayed again only gets a new attempt number), so these POSTs are sent again as
idempotent. Every failure raises TaskOpsError; when a batch fails after others were answered, its `echoed` holds
what they echoed.
"""

from __future__ import annotations

import ssl
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hatchet_client.errors import TaskOpsError
from hatchet_client.rest import Answer, RestClient, RestLimits
from hatchet_client.runs import RUN_STATUSES

DEFAULT_BATCH = 1000
MAX_BATCH = 10_000  # the embedded engine takes at most 20,000 ids per request; Hatchet sets no number


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _path(tenant: str, rest: str) -> str:
    return f"/api/v1/stable/tenants/{urllib.parse.quote(tenant, safe='')}/{rest}"


def _client(server_url: str, token: str, limits: RestLimits | None, ssl_context: ssl.SSLContext | None) -> RestClient:
    return RestClient(server_url, token, limits=limits, ssl_context=ssl_context)


def run_metrics(
    server_url: str,
    tenant: str,
    token: str,
    metadata: Mapping[str, str],
    *,
    since: datetime,
    until: datetime | None = None,
    limits: RestLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, int]:
    """How many runs created in [since, until] with ANY of the metadata pairs (every run when empty) are in each
    status: every one of QUEUED, RUNNING, COMPLETED, CANCELLED, FAILED is a key (0 when the engine lists none)."""
    params = [("since", _rfc3339(since))]
    if until is not None:
        params.append(("until", _rfc3339(until)))
    for key, value in metadata.items():
        if ":" in key:
            raise TaskOpsError(f"cannot filter on metadata key {key!r}: the API splits `key:value` on the first ':'")
        params.append(("additional_metadata", f"{key}:{value}"))
    answer = _client(server_url, token, limits, ssl_context).get(
        _path(tenant, "task-metrics"), params, error=TaskOpsError
    )
    counts = dict.fromkeys(RUN_STATUSES, 0)
    seen: set[str] = set()
    for i, raw in enumerate(answer.as_list(answer.value, "the answer")):
        where = f"[{i}]"
        row = answer.as_object(raw, where)
        status = answer.string(row, "status", where)
        count = answer.optional_int(row, "count", where)
        if status not in counts:
            answer.fail(f"{where}.status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        if status in seen:
            answer.fail(f"{where}.status {status} is listed twice")
        if count is None or count < 0:
            answer.fail(f"{where}.count is {'missing' if count is None else count}, not a count")
        answer.optional_object(row, "runningDetailCount", where)
        seen.add(status)
        counts[status] = count
    return counts


def cancel_runs(
    server_url: str,
    tenant: str,
    token: str,
    ids: Sequence[str],
    *,
    batch: int = DEFAULT_BATCH,
    limits: RestLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[str]:
    """Cancel these runs (run ids or task external ids), `batch` ids per request; the ids the answers echoed."""
    return _send(server_url, tenant, token, "cancel", ids, batch, limits, ssl_context)


def replay_runs(
    server_url: str,
    tenant: str,
    token: str,
    ids: Sequence[str],
    *,
    batch: int = DEFAULT_BATCH,
    limits: RestLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[str]:
    """Replay these finished runs (run ids, or task external ids: a task and its descendants), `batch` ids per
    request; the ids the answers echoed (task ids: see the module's description)."""
    return _send(server_url, tenant, token, "replay", ids, batch, limits, ssl_context)


def _send(
    server_url: str,
    tenant: str,
    token: str,
    op: str,
    ids: Sequence[str],
    batch: int,
    limits: RestLimits | None,
    ssl_context: ssl.SSLContext | None,
) -> list[str]:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise TaskOpsError(f"batch must be an integer between 1 and {MAX_BATCH}, not {batch!r}")
    if isinstance(ids, str):
        raise TaskOpsError("ids must be a sequence of ids, not one string")
    checked = [_uuid(i, ident) for i, ident in enumerate(ids)]  # all of them, before anything is sent
    client = _client(server_url, token, limits, ssl_context)
    path = _path(tenant, f"tasks/{op}")
    echoed: list[str] = []
    for start in range(0, len(checked), batch):
        try:
            answer = client.post(
                path, {"externalIds": checked[start : start + batch]}, idempotent=True, error=TaskOpsError
            )
            echoed += _echoed(answer)
        except TaskOpsError as exc:
            if not echoed:
                raise
            raise TaskOpsError(
                f"{exc.problem} ({len(echoed)} ids echoed by the requests before this one)",
                reason=exc.reason,
                url=exc.url,
                method=exc.method,
                status=exc.status,
                echoed=echoed,
            ) from None
    return echoed


def _uuid(i: int, ident: Any) -> str:
    if not isinstance(ident, str):
        raise TaskOpsError(f"ids[{i}] is not a string: {type(ident).__name__}")
    try:
        uuid.UUID(ident)
    except ValueError:
        raise TaskOpsError(f"ids[{i}] is not a UUID: {ident[:60]!r}") from None
    return ident


def _echoed(answer: Answer) -> list[str]:
    body = answer.as_object(answer.value, "the answer")
    ids = body.get("ids")
    if ids is None:  # optional in Hatchet's schema (V1CancelledTasks, V1ReplayedTasks)
        return []
    for i, ident in enumerate(answer.as_list(ids, "ids")):
        if not isinstance(ident, str):
            answer.fail(f"ids[{i}] is not an id (a string)")
    return list(ids)
