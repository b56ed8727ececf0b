"""Events over gRPC (`EventsService/Push` and `BulkPush`), as the official SDK's `hatchet.event` names them.

An event has a key (the client's namespace is applied, as the official SDK does), a JSON payload and metadata.
The engine stores it and starts a run of every workflow whose `on_events` matches the key (`*` is a wildcard),
with the payload as input and the event's metadata plus `hatchet__event_id` and `hatchet__event_key`. A push
answers the stored events, not run ids (Hatchet finds the runs by `triggering_event_external_id`).

`bulk_push` sends at most 1000 events per call (Hatchet's bound), longer lists in consecutive calls. Every event
is checked before the first call. A call is never sent twice (a push that may have been applied, sent again,
would start its runs twice): a failure raises EventPushError, whose `pushed` holds the events of the calls
answered before it. Each call waits for a connection first, and has a deadline (`timeout`, else the client's
call_timeout, else 30 s).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hatchet_client._proto import events_pb2
from hatchet_client.admin import AdminClient
from hatchet_client.errors import EventPushError, RpcError

PUSH_METHOD = "/EventsService/Push"
BULK_PUSH_METHOD = "/EventsService/BulkPush"
MAX_BULK_EVENTS = 1000
DEFAULT_TIMEOUT = 30.0
_EVENT_FIELDS = ("key", "payload", "additional_metadata", "priority", "scope")


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event, as the engine answered it. `payload` is the decoded JSON payload, `additional_metadata`
    the decoded metadata (None when the engine echoes none), `created_at` when the engine stored it."""

    event_id: str
    key: str
    payload: Any
    additional_metadata: Mapping[str, Any] | None
    created_at: datetime
    scope: str | None
    tenant_id: str


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
    """`hatchet.event`: push events over the client's gRPC channel (shared with `hatchet.admin`)."""

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
