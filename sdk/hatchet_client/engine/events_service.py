"""EventsService: events pushed by clients (Push, BulkPush) and the task logs workers send (PutLog).

Push and BulkPush are checked as Hatchet's ingestor checks them (`internal/services/ingestor/server.go`): 1..1000
events a call (else INVALID_ARGUMENT), a key, the payload and metadata valid JSON without `\\u0000`, a priority
between 1 and 3. Stricter in one way: the payload must be a JSON object (it is the input of the runs it starts;
an empty payload is `{}`). The whole call is checked before anything is stored; then the scheduler stores the
events and starts the runs of the workflows they match (dispatch/event_runs.py), in one transaction. The answer
echoes each event with its new id and the time it was stored, its metadata and scope.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import grpc

from hatchet_client._proto import events_pb2, events_pb2_grpc
from hatchet_client.engine.dispatch import events as ev
from hatchet_client.engine.dispatch.event_runs import EventIn
from hatchet_client.engine.dispatch.scheduler import Scheduler
from hatchet_client.engine.schema import iso_utc
from hatchet_client.engine.service import answer
from hatchet_client.engine.validate import RequestError

MAX_BULK_EVENTS = 1000


def _invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json(text: str, field: str, where: str) -> Any:
    if "\\u0000" in text:
        raise _invalid(f"Invalid request: {where}encoded jsonb contains invalid null character \\u0000 in `{field}`")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _invalid(f"Invalid request: {where}invalid json in field `{field}`") from None


def checked(request: Any, where: str = "") -> EventIn:
    """One PushEventRequest as the engine stores it; RequestError (INVALID_ARGUMENT) otherwise."""
    if not request.key:
        raise _invalid(f"Invalid request: {where}key is required")
    if "\x00" in request.key:
        raise _invalid(f"Invalid request: {where}key cannot contain NUL")
    payload = request.payload or "{}"
    if not isinstance(_json(payload, "payload", where), dict):
        raise _invalid(
            f"Invalid request: {where}payload must be a JSON object (the embedded engine gives it as input to runs)"
        )
    metadata = request.additional_metadata if request.HasField("additional_metadata") else None
    if metadata:
        _json(metadata, "additionalMetadata", where)
    priority = request.priority if request.HasField("priority") else None
    if priority is not None and not 1 <= priority <= 3:
        raise _invalid(f"{where}priority must be between 1 and 3, got {priority}")
    scope = request.scope if request.HasField("scope") else None
    return EventIn(request.key, payload, metadata or None, priority, scope)


def _stored_time(seconds: float) -> dict[str, int]:
    """The time as the events table stores it (microseconds: what the REST listing shows), as Timestamp fields."""
    moment = datetime.fromisoformat(iso_utc(seconds))
    return {"seconds": int(moment.replace(microsecond=0).timestamp()), "nanos": moment.microsecond * 1000}


class EventsServicer(events_pb2_grpc.EventsServiceServicer):  # type: ignore[misc]
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def _store(self, events: list[EventIn]) -> list[Any]:
        stored = self._scheduler.call(ev.PushEvents(tuple(events)))
        answers = []
        for event, (event_id, at) in zip(events, stored, strict=True):
            message = events_pb2.Event(
                tenant_id=self._scheduler.tenant_id,
                event_id=event_id,
                key=event.key,
                payload=event.payload,
                event_timestamp=_stored_time(at),
            )
            if event.metadata is not None:
                message.additional_metadata = event.metadata
            if event.scope is not None:
                message.scope = event.scope
            answers.append(message)
        return answers

    def Push(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            return self._store([checked(request)])[0]

        return answer(context, handle)

    def BulkPush(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            n = len(request.events)
            if n == 0:
                raise _invalid("No events to ingest")
            if n > MAX_BULK_EVENTS:
                raise _invalid(f"Invalid request: too many events - {n} is over maximum ({MAX_BULK_EVENTS})")
            events = [checked(item, f"events[{i}]: ") for i, item in enumerate(request.events)]
            return events_pb2.Events(events=self._store(events))

        return answer(context, handle)

    def PutLog(self, request: Any, context: grpc.ServicerContext) -> Any:
        """A task's log line, kept in `task_logs` (posted: the worker does not wait for the commit)."""

        def handle() -> Any:
            at = request.created_at.ToDatetime().isoformat() + "Z"
            self._scheduler.post(
                ev.Log(
                    request.task_run_external_id,
                    request.task_retry_count if request.HasField("task_retry_count") else None,
                    at,
                    request.level if request.HasField("level") else None,
                    request.message,
                )
            )
            return events_pb2.PutLogResponse()

        return answer(context, handle)
