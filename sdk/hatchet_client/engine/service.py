"""The gRPC side: authentication interceptor and the WorkflowService / v1.AdminService servicers (the Dispatcher's
are in dispatch/service.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import grpc

from hatchet_client._proto import workflows_pb2, workflows_pb2_grpc
from hatchet_client._proto.v1 import admin_pb2, admin_pb2_grpc
from hatchet_client.engine.dispatch import results
from hatchet_client.engine.dispatch.definitions import parse_workflow
from hatchet_client.engine.dispatch.events import Cancel, PutWorkflow
from hatchet_client.engine.dispatch.scheduler import Scheduler
from hatchet_client.engine.errors import EngineStopping, TokenError
from hatchet_client.engine.faults import FaultSchedule
from hatchet_client.engine.store import RunStore, workflow_id
from hatchet_client.engine.tokens import TokenVerifier
from hatchet_client.engine.validate import RequestError, TriggerRequest, validate_runs
from hatchet_client.engine.writer import RunWriter

log = logging.getLogger(__name__)
T = TypeVar("T")

UnknownWorkflows = Literal["drop", "refuse"]
UNKNOWN_WORKFLOW_MODES: tuple[UnknownWorkflows, ...] = ("drop", "refuse")


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Rejects every RPC without a valid `authorization: bearer <token>` before its handler runs."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        value = None
        for key, val in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                value = val if isinstance(val, str) else val.decode("latin-1")
                break
        try:
            self._verifier.verify_header(value)
        except TokenError as exc:
            message = str(exc)

            def deny(request: Any, context: grpc.ServicerContext) -> Any:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

            return grpc.unary_unary_rpc_method_handler(deny)
        return continuation(handler_call_details)


def answer(context: grpc.ServicerContext, handle: Callable[[], T]) -> T:
    """Run a handler; our RequestError becomes its status, anything unexpected becomes INTERNAL."""
    try:
        return handle()
    except RequestError as exc:
        code, message = exc.code, exc.message
    except EngineStopping as exc:
        code, message = grpc.StatusCode.UNAVAILABLE, str(exc)
    except Exception as exc:
        log.exception("engine: unexpected error in %s", getattr(handle, "__name__", "handler"))
        code, message = grpc.StatusCode.INTERNAL, f"internal engine error: {type(exc).__name__}: {exc}"
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


class Ingest:
    """Accepts trigger calls: faults, validation of the whole call, the workflow names, durable write, run ids.

    Workflow names: while the engine knows no workflow (`store.known_workflows()` empty), every name is stored (a
    recorder). Once it knows some, runs of other names are, with `unknown="drop"` (Hatchet's behaviour with its
    default settings), left out without an error while the call still answers a generated run id for each of them
    (ids that no run will ever have); with `unknown="refuse"` (Hatchet's message-queue path), the whole call is
    refused with INVALID_ARGUMENT `workflow names not found: a, b` and nothing is stored. TriggerWorkflow and
    BulkTriggerWorkflow alike."""

    def __init__(
        self,
        writer: RunWriter,
        faults: FaultSchedule,
        stopping: threading.Event,
        store: RunStore,
        unknown: UnknownWorkflows = "drop",
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self._on_stored = on_stored
        self._writer = writer
        self._faults = faults
        self._stopping = stopping
        self._store = store
        self._unknown = unknown

    def trigger(self, items: Any, bulk: bool) -> list[str]:
        hits = self._faults.next_call()
        for fault in hits:
            if fault.kind == "stall":
                self._stopping.wait(fault.seconds)
        for fault in hits:
            if fault.kind == "refuse":
                raise RequestError(fault.status_code, "fault injected: call refused before anything was written")
        rows = validate_runs(items, bulk)
        ids = [row[0] for row in rows]
        known = self._store.known_workflows()
        if known:
            names = {row[1] for row in rows}
            if not names <= known:
                unknown = sorted(names - known)
                if self._unknown == "refuse":
                    raise RequestError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"workflow names not found: {', '.join(unknown)}"
                    )
                rows = [row for row in rows if row[1] in known]
                log.debug("engine: %d runs of unknown workflows dropped: %s", len(ids) - len(rows), unknown)
        if rows:
            self._writer.write(rows)
            if self._on_stored is not None:
                self._on_stored()
        for fault in hits:
            if fault.kind == "fail_after_commit":
                raise RequestError(fault.status_code, "fault injected: call failed after its runs were committed")
        return ids


class WorkflowServicer(workflows_pb2_grpc.WorkflowServiceServicer):  # type: ignore[misc]
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def TriggerWorkflow(self, request: TriggerRequest, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            ids = self._ingest.trigger([request], bulk=False)
            return workflows_pb2.TriggerWorkflowResponse(workflow_run_id=ids[0])

        return answer(context, handle)

    def BulkTriggerWorkflow(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            ids = self._ingest.trigger(request.workflows, bulk=True)
            return workflows_pb2.BulkTriggerWorkflowResponse(workflow_run_ids=ids)

        return answer(context, handle)


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):  # type: ignore[misc]
    """PutWorkflow (a worker's workflows: versions the scheduler runs), CancelTasks (by task or run id) and
    GetRunDetails (the run's real status and its tasks' outcomes)."""

    def __init__(self, store: RunStore, scheduler: Scheduler) -> None:
        self._store = store
        self._scheduler = scheduler

    def PutWorkflow(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            version_id, _ = self._scheduler.call(PutWorkflow(parse_workflow(request)))
            return admin_pb2.CreateWorkflowVersionResponse(
                id=version_id, workflow_id=workflow_id(self._store.tenant_id, request.name)
            )

        return answer(context, handle)

    def CancelTasks(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            if request.HasField("filter"):
                raise RequestError(
                    grpc.StatusCode.UNIMPLEMENTED, "the embedded engine cancels by external_ids only, not by filter"
                )
            if not request.external_ids:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "external_ids is empty")
            cancelled = self._scheduler.call(Cancel(tuple(request.external_ids)))
            return admin_pb2.CancelTasksResponse(cancelled_tasks=cancelled)

        return answer(context, handle)

    def GetRunDetails(self, request: Any, context: grpc.ServicerContext) -> Any:
        def handle() -> Any:
            run_id = request.external_id
            run = self._store.get_raw_run(run_id) if run_id else None
            if run is None:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"workflow run {run_id!r} not found")
            return self._store.read(lambda conn: results.details(conn, run.seq, run.input, run.additional_metadata))

        return answer(context, handle)


def add_servicers(server: grpc.Server, ingest: Ingest, store: RunStore, scheduler: Scheduler) -> None:
    workflows_pb2_grpc.add_WorkflowServiceServicer_to_server(WorkflowServicer(ingest), server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(store, scheduler), server)
