"""The Dispatcher servicer (workers and run subscriptions); EventsService's is in engine/events_service.py."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from hatchet_client._proto import dispatcher_pb2, dispatcher_pb2_grpc, events_pb2_grpc
from hatchet_client.engine.dispatch import events as ev
from hatchet_client.engine.dispatch import results
from hatchet_client.engine.dispatch.assign import timestamp
from hatchet_client.engine.dispatch.definitions import parse_duration
from hatchet_client.engine.dispatch.scheduler import Scheduler
from hatchet_client.engine.dispatch.subscriptions import Subscription
from hatchet_client.engine.dispatch.workers import WorkerStream, slot_capacity
from hatchet_client.engine.errors import EngineStopping
from hatchet_client.engine.events_service import EventsServicer
from hatchet_client.engine.service import answer
from hatchet_client.engine.store import RunStore
from hatchet_client.engine.validate import RequestError

log = logging.getLogger("hatchet_client.engine")

# What GetVersion answers: the Hatchet release whose worker protocol this engine speaks (slot_config, retry_after_ms).
ENGINE_VERSION = "v0.111.0"
POLL_SECONDS = 0.5  # how often a stream waiting for something to send checks that its client is still there
_STEP_KINDS = {
    dispatcher_pb2.STEP_EVENT_TYPE_STARTED: "started",
    dispatcher_pb2.STEP_EVENT_TYPE_COMPLETED: "completed",
    dispatcher_pb2.STEP_EVENT_TYPE_FAILED: "failed",
    dispatcher_pb2.STEP_EVENT_TYPE_CANCELLED: "cancelled",
}
_once: set[str] = set()
_once_lock = threading.Lock()


def _log_once(key: str, message: str, *args: Any) -> None:
    with _once_lock:
        if key in _once:
            return
        _once.add(key)
    log.warning(message, *args)


class DispatcherServicer(dispatcher_pb2_grpc.DispatcherServicer):  # type: ignore[misc]
    def __init__(self, scheduler: Scheduler, store: RunStore, stopping: threading.Event) -> None:
        self._scheduler = scheduler
        self._store = store
        self._stopping = stopping

    def GetVersion(self, request: Any, context: grpc.ServicerContext) -> Any:
        return dispatcher_pb2.GetVersionResponse(version=ENGINE_VERSION)

    def Register(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            if not request.worker_name:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "worker_name is empty")
            capacity = slot_capacity(dict(request.slot_config), request.slots)
            if not capacity:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "a worker needs at least one slot")
            if request.labels:
                _log_once(
                    "labels",
                    "engine: worker labels are recorded nowhere and not matched (worker %s)",
                    request.worker_name,
                )
            if request.webhook_id:
                _log_once("webhook", "engine: webhook workers are not supported (worker %s)", request.worker_name)
            worker_id = self._scheduler.call(ev.Register(request.worker_name, tuple(request.actions), capacity))
            log.info(
                "engine: worker %s registered (%s): %d actions, slots %s",
                request.worker_name,
                worker_id,
                len(request.actions),
                capacity,
            )
            return dispatcher_pb2.WorkerRegisterResponse(
                tenant_id=self._scheduler.tenant_id, worker_id=worker_id, worker_name=request.worker_name
            )

        return answer(context, handle)

    def UpsertWorkerLabels(self, request: Any, context: grpc.ServicerContext) -> Any:
        _log_once("labels", "engine: worker labels are recorded nowhere and not matched")
        return dispatcher_pb2.UpsertWorkerLabelsResponse(
            tenant_id=self._scheduler.tenant_id, worker_id=request.worker_id
        )

    def Heartbeat(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            self._scheduler.heartbeat(request.worker_id)
            return dispatcher_pb2.HeartbeatResponse()

        return answer(context, handle)

    def Listen(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        return self.ListenV2(request, context)

    def ListenV2(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        stream = WorkerStream(request.worker_id)
        answer(context, lambda: self._scheduler.call(ev.Listen(request.worker_id, stream)))
        try:
            while not self._stopping.is_set():
                try:
                    item = stream.queue.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if not context.is_active():
                        break
                    continue
                if item is None:
                    break
                yield item
        finally:
            stream.closed = True
            try:
                self._scheduler.post(ev.Detach(request.worker_id, stream, stream.drain()))
            except EngineStopping:
                log.debug("engine: listener of worker %s ended while the engine stops", request.worker_id)

    def Unsubscribe(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            self._scheduler.call(ev.Unsubscribe(request.worker_id))
            return dispatcher_pb2.WorkerUnsubscribeResponse(
                tenant_id=self._scheduler.tenant_id, worker_id=request.worker_id
            )

        return answer(context, handle)

    def SendStepActionEvent(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            kind = _STEP_KINDS.get(request.event_type)
            if kind is not None:
                self._scheduler.call(
                    ev.StepEvent(
                        request.worker_id,
                        request.task_run_external_id,
                        request.retry_count if request.HasField("retry_count") else None,
                        kind,
                        request.event_payload,
                        request.should_not_retry,
                        request.retry_after_ms if request.HasField("retry_after_ms") else None,
                    )
                )
            return dispatcher_pb2.ActionEventResponse(tenant_id=self._scheduler.tenant_id, worker_id=request.worker_id)

        return answer(context, handle)

    def RefreshTimeout(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            seconds = parse_duration(request.increment_timeout_by, "increment_timeout_by")
            at = self._scheduler.call(ev.RefreshTimeout(request.task_run_external_id, seconds))
            return dispatcher_pb2.RefreshTimeoutResponse(timeout_at=timestamp(at))

        return answer(context, handle)

    def ReleaseSlot(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            self._scheduler.call(ev.ReleaseSlot(request.task_run_external_id))
            return dispatcher_pb2.ReleaseSlotResponse()

        return answer(context, handle)

    def SubscribeToWorkflowRuns(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        sub = Subscription()
        watchers = self._scheduler.watchers

        def read() -> None:
            try:
                for req in request_iterator:
                    run_id = req.workflow_run_id
                    watchers.watch(run_id, sub)  # before the check: a run settling in between is announced
                    raw = self._store.get_raw_run(run_id)
                    if raw is not None:
                        seq = raw.seq

                        def finished(conn: Any, rid: str = run_id, at: int = seq) -> Any:
                            return results.finished_event(conn, rid, at)

                        event = self._store.read(finished)
                        if event is not None:
                            sub.queue.put(event)
            except Exception as exc:  # noqa: BLE001 - the client went away, or the engine stops
                log.debug("engine: a run subscription's requests ended: %s", exc)

        threading.Thread(target=read, name="engine-run-subscription", daemon=True).start()
        try:
            while not self._stopping.is_set():
                try:
                    item = sub.queue.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if not context.is_active():
                        break
                    continue
                if item is None:
                    break
                if item.workflow_run_id not in sub.sent:
                    sub.sent.add(item.workflow_run_id)
                    yield item
        finally:
            watchers.forget(sub)


def add_dispatch_servicers(
    server: grpc.Server, scheduler: Scheduler, store: RunStore, stopping: threading.Event
) -> None:
    dispatcher_pb2_grpc.add_DispatcherServicer_to_server(DispatcherServicer(scheduler, store, stopping), server)
    events_pb2_grpc.add_EventsServiceServicer_to_server(EventsServicer(scheduler), server)
