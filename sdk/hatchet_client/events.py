"""Events pushed over gRPC (`EventsService/Push` and `BulkPush`) and listed over REST, as the official SDK's
`hatchet.event` names them.

An event has a key (the client's namespace is applied, as the official SDK does), a JSON payload and metadata.
The engine stores it and starts a run of every workflow whose `on_events` matches the key (`*` is a wildcard),
with the payload as input and the event's metadata plus `hatchet__event_id` and `hatchet__event_key`. A push
answers the stored events, not run ids (Hatchet finds the runs by `triggering_event_external_id`).

`bulk_push` sends at most 1000 events per call (Hatchet's bound), longer lists in consecutive calls. Every event
is checked before the first call. A call is never sent twice (a push that may have been applied, sent again,
would start its runs twice): a failure raises EventPushError, whose `pushed` holds the events of the calls
answered before it. Each call waits for a connection first, and has a deadline (`timeout`, else the client's
call_timeout, else 30 s).

`list` reads the stored events back over REST (`GET /api/v1/stable/tenants/{tenant}/events`, the official SDK's
`EventApi.v1_event_list`): by key (the namespace applied, as for a push), metadata pairs (all of them, as JSON
strings), time, scope or id, newest first, every page fetched lazily; each row says which runs the event started
and how many of them are in each status. Hatchet lists only the last 24 hours when `since` is not given. Its
count of matches stops at 20,000, so the pages are read until a short one (`num_pages` is not trusted), and a row
already listed (events pushed while the listing runs shift the pages) is not listed twice. Every failure of a
listing raises EventListError.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hatchet_client._proto import events_pb2
from hatchet_client.admin import AdminClient
from hatchet_client.errors import EventListError, EventPushError, RpcError
from hatchet_client.rest import Answer, RestClient
from hatchet_client.rest_pages import MAX_PAGE_SIZE, check_id, metadata_filters, pages, rfc3339

PUSH_METHOD = "/EventsService/Push"
BULK_PUSH_METHOD = "/EventsService/BulkPush"
MAX_BULK_EVENTS = 1000
DEFAULT_TIMEOUT = 30.0
DEFAULT_PAGE_SIZE = 100
_EVENT_FIELDS = ("key", "payload", "additional_metadata", "priority", "scope")
# V1EventWorkflowRunSummary's fields (all required), by the run statuses the other listings name.
_SUMMARY = (
    ("queued", "QUEUED"),
    ("running", "RUNNING"),
    ("succeeded", "COMPLETED"),
    ("failed", "FAILED"),
    ("cancelled", "CANCELLED"),
)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event, as the engine answered it. `payload` is the decoded JSON payload (None in a listing whose
    engine does not show payloads), `additional_metadata` the decoded metadata (None when the engine echoes none),
    `created_at` when the engine stored it. Listed events also say what they started: `triggered_run_ids` (the
    run ids) and `runs_by_status` (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED -> how many); a push answers
    neither (empty, None). `tenant_id` may be empty in a listing (Hatchet leaves it so)."""

    event_id: str
    key: str
    payload: Any
    additional_metadata: Mapping[str, Any] | None
    created_at: datetime
    scope: str | None
    tenant_id: str
    triggered_run_ids: tuple[str, ...] = ()
    runs_by_status: Mapping[str, int] | None = None

    @property
    def triggered_runs(self) -> int:
        """How many runs the event started (as far as the listing says: 0 for a push's answer)."""
        return len(self.triggered_run_ids)


def _refused(message: str) -> EventPushError:
    return EventPushError(message, code=None, applied=False)


def _json(value: object, what: str) -> str:
    if not isinstance(value, Mapping):
        raise _refused(f"{what} must be a mapping (a JSON object), not {type(value).__name__}")
    try:
        return json.dumps(dict(value), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _refused(f"{what} cannot be sent as JSON: {exc}") from None


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class EventClient:
    """`hatchet.event`: push events over the client's gRPC channel (shared with `hatchet.admin`), list them over
    REST (each listing request opens its own connection)."""

    def __init__(self, admin: AdminClient) -> None:
        self._admin = admin

    def push(
        self,
        key: str,
        payload: Mapping[str, Any],
        additional_metadata: Mapping[str, Any] | None = None,
        priority: int | None = None,
        scope: str | None = None,
        *,
        timeout: float | None = None,
    ) -> EventRow:
        """Push one event; the stored event. EventPushError when refused or failed."""
        request = self._request("", key, payload, additional_metadata, priority, scope)
        response = self._call("Push", PUSH_METHOD, request.SerializeToString(), events_pb2.Event.FromString, timeout)
        return _row(response)

    def bulk_push(
        self, events: Iterable[Mapping[str, Any]], *, batch: int = MAX_BULK_EVENTS, timeout: float | None = None
    ) -> list[EventRow]:
        """Push events given as mappings `{key, payload, additional_metadata?, priority?, scope?}`, `batch` (<= 1000)
        per call, in order; the stored events in the same order. Nothing is sent unless every event is valid."""
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BULK_EVENTS:
            raise _refused(f"batch must be an integer between 1 and {MAX_BULK_EVENTS}, not {batch!r}")
        if isinstance(events, (str, bytes, Mapping)):
            raise _refused("events must be an iterable of event mappings, not one value")
        requests = []
        for i, event in enumerate(events):
            if not isinstance(event, Mapping):
                raise _refused(f"events[{i}] must be a mapping, not {type(event).__name__}")
            unknown = sorted(set(event) - set(_EVENT_FIELDS))
            if unknown:
                raise _refused(f"events[{i}]: unknown fields {unknown!r} (known: {', '.join(_EVENT_FIELDS)})")
            if "key" not in event or "payload" not in event:
                raise _refused(f"events[{i}] needs a key and a payload")
            requests.append(
                self._request(
                    f"events[{i}]: ",
                    event["key"],
                    event["payload"],
                    event.get("additional_metadata"),
                    event.get("priority"),
                    event.get("scope"),
                )
            )
        pushed: list[EventRow] = []
        for start in range(0, len(requests), batch):
            chunk = requests[start : start + batch]
            payload = events_pb2.BulkPushEventRequest(events=chunk).SerializeToString()
            try:
                answer = self._call("BulkPush", BULK_PUSH_METHOD, payload, events_pb2.Events.FromString, timeout)
            except EventPushError as exc:
                if not pushed:
                    raise
                raise EventPushError(
                    f"{exc} (events {start}..{start + len(chunk) - 1}; {len(pushed)} pushed by the calls before)",
                    code=exc.code,
                    applied=exc.applied,
                    pushed=pushed,
                ) from None
            if len(answer.events) != len(chunk):
                raise EventPushError(
                    f"BulkPush: the engine answered {len(answer.events)} events for {len(chunk)}",
                    code="OK",
                    applied=None,
                    pushed=pushed,
                )
            pushed += [_row(event) for event in answer.events]
        return pushed

    def _request(
        self, where: str, key: object, payload: object, metadata: object, priority: object, scope: object
    ) -> Any:
        if not isinstance(key, str) or not key:
            raise _refused(f"{where}key must be a non-empty string, not {key!r}")
        if priority is not None and (
            isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 3
        ):
            raise _refused(f"{where}priority must be 1, 2 or 3 (or None), not {priority!r}")
        if scope is not None and not isinstance(scope, str):
            raise _refused(f"{where}scope must be a string, not {type(scope).__name__}")
        now = datetime.now(UTC).timestamp()
        return events_pb2.PushEventRequest(
            key=self._admin.config.apply_namespace(key),
            payload=_json(payload, f"{where}payload"),
            event_timestamp={"seconds": int(now), "nanos": int((now - int(now)) * 1e9)},
            additional_metadata=_json(metadata if metadata is not None else {}, f"{where}additional_metadata"),
            priority=priority,
            scope=scope,
        )

    def _call(self, what: str, method: str, payload: bytes, deserializer: Any, timeout: float | None) -> Any:
        deadline = timeout if timeout is not None else self._admin.config.call_timeout or DEFAULT_TIMEOUT
        try:
            return self._admin.call(what, method, payload, deserializer, deadline)
        except RpcError as exc:
            raise EventPushError(str(exc), code=exc.code, applied=exc.applied) from None

    def list(
        self,
        *,
        keys: Collection[str] | None = None,
        additional_metadata: Mapping[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        scopes: Collection[str] | None = None,
        event_ids: Collection[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        limit: int | None = None,
    ) -> Iterator[EventRow]:
        """The stored events (with one of `keys`, the namespace applied; whose metadata has all these string pairs;
        stored in [since, until] (naive: UTC); with one of `scopes`; one of `event_ids`), newest first, `page_size`
        (<= 1000) per request, fetched lazily, at most `limit` of them. Hatchet lists the last 24 hours when
        `since` is None. A metadata key or value that is empty or contains ':' is refused (EventListError)."""
        config = self._admin.config
        params: list[tuple[str, str]] = []
        params += [("keys", config.apply_namespace(key)) for key in _texts(keys, "keys")]
        for name, moment in (("since", since), ("until", until)):
            if moment is not None:
                params.append((name, rfc3339(moment, name, EventListError)))
        if since is not None and until is not None and _utc(since) > _utc(until):
            raise EventListError(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
        params += [
            ("eventIds", check_id(ident, f"event_ids[{i}]", EventListError))
            for i, ident in enumerate(_collection(event_ids, "event_ids"))
        ]
        filters = metadata_filters(additional_metadata, EventListError)
        for _, pair in filters:
            key, _, value = pair.partition(":")
            if not key or not value:
                raise EventListError(
                    f"cannot filter on metadata {key!r}: {value!r}: Hatchet refuses an empty key or value"
                )
        params += filters
        params += [("scopes", scope) for scope in _texts(scopes, "scopes")]
        size = _page_size(page_size, limit)
        path = f"/api/v1/stable/tenants/{urllib.parse.quote(config.tenant_id, safe='')}/events"
        client = RestClient(
            config.server_url, config.token, limits=config.rest_limits, ssl_context=config.rest_ssl_context()
        )
        rows = _distinct(pages(client, path, params, size, event_row, EventListError, trust_num_pages=False))
        return rows if limit is None else itertools.islice(rows, limit)


def _row(event: Any) -> EventRow:
    metadata = _decoded(event.additional_metadata) if event.HasField("additional_metadata") else None
    return EventRow(
        event_id=event.event_id,
        key=event.key,
        payload=_decoded(event.payload) if event.payload else {},
        additional_metadata=metadata if isinstance(metadata, dict) else None,
        created_at=event.event_timestamp.ToDatetime(tzinfo=UTC),
        scope=event.scope if event.HasField("scope") else None,
        tenant_id=event.tenant_id,
    )


def event_row(answer: Answer, raw: Any, where: str) -> EventRow:
    """A `V1Event` object checked field by field (required: metadata{id, createdAt}, key, tenantId,
    workflowRunSummary with its five counts; the rest optional)."""
    row = answer.as_object(raw, where)
    meta = answer.as_object(row.get("metadata"), f"{where}.metadata")
    at = f"{where}.workflowRunSummary"
    summary = answer.as_object(row.get("workflowRunSummary"), at)
    counts: dict[str, int] = {}
    for field, status in _SUMMARY:
        count = answer.optional_int(summary, field, at)
        if count is None:
            answer.fail(f"{at}.{field} is missing or null, not an integer")
        if count < 0:
            answer.fail(f"{at}.{field} is negative ({count})")
        counts[status] = count
    raw_runs = row.get("triggeredRuns")
    runs = [] if raw_runs is None else answer.as_list(raw_runs, f"{where}.triggeredRuns")
    run_ids = tuple(
        answer.string(
            answer.as_object(run, f"{where}.triggeredRuns[{i}]"), "workflowRunId", f"{where}.triggeredRuns[{i}]"
        )
        for i, run in enumerate(runs)
    )
    return EventRow(
        event_id=answer.string(meta, "id", f"{where}.metadata"),
        key=answer.string(row, "key", where),
        payload=answer.optional_object(row, "payload", where),
        additional_metadata=answer.optional_object(row, "additionalMetadata", where),
        created_at=answer.timestamp(meta, "createdAt", f"{where}.metadata"),
        scope=answer.optional_string(row, "scope", where),
        tenant_id=answer.string(row, "tenantId", where),
        triggered_run_ids=run_ids,
        runs_by_status=counts,
    )


def _collection(values: Collection[str] | None, what: str) -> Collection[str]:
    if values is None:
        return ()
    if isinstance(values, (str, bytes)) or not isinstance(values, Collection):
        raise EventListError(f"{what} must be a collection of strings, not {type(values).__name__}")
    return values


def _texts(values: Collection[str] | None, what: str) -> list[str]:
    texts = []
    for i, value in enumerate(_collection(values, what)):
        if not isinstance(value, str) or not value:
            raise EventListError(f"{what}[{i}] must be a non-empty string, not {value!r}")
        texts.append(value)
    return texts


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _page_size(size: object, limit: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise EventListError(f"page_size must be an integer between 1 and {MAX_PAGE_SIZE}, not {size!r}")
    if limit is None:
        return size
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise EventListError(f"limit must be a positive integer (or None), not {limit!r}")
    return min(size, limit)


def _distinct(rows: Iterator[EventRow]) -> Iterator[EventRow]:
    """The rows without the ones already listed (an event pushed during the listing shifts the later pages)."""
    seen: set[str] = set()
    for row in rows:
        if row.event_id not in seen:
            seen.add(row.event_id)
            yield row
