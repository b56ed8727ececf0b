"""WorkflowRunRef.result() through /v1.AdminService/GetRunDetails.

Every answer the engine can give (and some it should not) comes from a small real gRPC server here that answers
GetRunDetails from a script of responses; tests/outcomes/test_outcomes_client.py runs result() against the
embedded engine with an official SDK worker finishing the runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from hatchet_client import Hatchet, ResultTimeoutError, RpcError, RunFailedError
from hatchet_client._proto.v1 import admin_pb2

Step = Callable[[grpc.ServicerContext], admin_pb2.GetRunDetailsResponse]


class DetailsServer:
    def __init__(self) -> None:
        self.script: list[Step] = []
        self.auth: list[str] = []
        self.asked: list[str] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_unary_rpc_method_handler(
            self.details,
            request_deserializer=admin_pb2.GetRunDetailsRequest.FromString,
            response_serializer=admin_pb2.GetRunDetailsResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("v1.AdminService", {"GetRunDetails": handler})]
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def details(self, request: admin_pb2.GetRunDetailsRequest, context: grpc.ServicerContext) -> Any:
        self.auth.append(str(dict(context.invocation_metadata()).get("authorization", "")))
        self.asked.append(request.external_id)
        with self._lock:
            step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return step(context)


def not_found(context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such run")


def status(name: str, tasks: dict[str, dict[str, Any]] | None = None, done: bool = False) -> Step:
    def respond(context: grpc.ServicerContext) -> admin_pb2.GetRunDetailsResponse:
        response = admin_pb2.GetRunDetailsResponse(
            input=b'{"a":1}', status=name, done=done, additional_metadata=b'{"k":"v"}'
        )
        for task, fields in (tasks or {}).items():
            response.task_runs[task].CopyFrom(admin_pb2.TaskRunDetail(readable_id=task, **fields))
        return response

    return respond


@pytest.fixture
def server() -> Iterator[DetailsServer]:
    srv = DetailsServer()
    srv.server.start()
    yield srv
    srv.server.stop(None)


@pytest.fixture
def client(server: DetailsServer, make_token: Callable[..., str]) -> Iterator[Hatchet]:
    with Hatchet(
        token=make_token(grpc_broadcast_address=f"127.0.0.1:{server.port}"), tls_strategy="none", environ={}
    ) as h:
        yield h


def test_result_polls_until_completed(server: DetailsServer, client: Hatchet, make_token: Callable[..., str]) -> None:
    output = json.dumps({"sum": 3}).encode()
    server.script = [
        not_found,
        status("QUEUED"),
        status("RUNNING"),
        status("COMPLETED", {"step1": {"status": admin_pb2.COMPLETED, "output": output}}, done=True),
    ]
    ref = client.admin.get_workflow_run("run-1")
    assert ref.result(timeout=10) == {"step1": {"sum": 3}}
    assert server.asked == ["run-1"] * 4
    assert set(server.auth) == {f"bearer {client.config.token}"}


def test_a_failed_run_raises_with_the_task_errors(server: DetailsServer, client: Hatchet) -> None:
    server.script = [status("FAILED", {"step1": {"status": admin_pb2.FAILED, "error": "boom"}}, done=True)]
    with pytest.raises(RunFailedError, match=r"^run run-2 failed: step1: boom$") as info:
        client.admin.get_workflow_run("run-2").result(timeout=5)
    assert info.value.errors == {"step1": "boom"}


def test_a_cancelled_run_raises(server: DetailsServer, client: Hatchet) -> None:
    server.script = [status("CANCELLED", done=True)]
    with pytest.raises(RunFailedError, match=r"^run run-3 cancelled$"):
        client.admin.get_workflow_run("run-3").result(timeout=5)


def test_a_run_never_found_times_out(server: DetailsServer, client: Hatchet) -> None:
    server.script = [not_found]
    with pytest.raises(ResultTimeoutError, match=r"^run run-4 not done after 0.2s \(run not found yet\)$"):
        client.admin.get_workflow_run("run-4").result(timeout=0.2)


def test_other_errors_propagate(server: DetailsServer, client: Hatchet) -> None:
    def denied(context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")

    server.script = [denied]
    with pytest.raises(RpcError, match=r"^GetRunDetails failed: PERMISSION_DENIED: not yours"):
        client.admin.get_workflow_run("run-5").result(timeout=5)
