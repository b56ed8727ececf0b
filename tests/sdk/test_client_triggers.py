"""The client's crons, scheduled runs and events against servers on 127.0.0.1 that a test scripts: what is sent
(paths, namespaced and quoted names, bodies, pages, batches), the shape of what is answered (a bad answer is a
clean CronError / ScheduleError naming the field), and what is refused before anything is sent."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from hatchet_client import (
    CronError,
    CronExpressionError,
    EventPushError,
    Hatchet,
    ScheduleError,
)
from hatchet_client._proto import events_pb2

from tests.sdk.conftest import MakeToken
from tests.sdk.scripted_http import Request, http_answer
from tests.sdk.test_client_rest import TENANT
from tests.sdk.test_client_task_ops import BodyServer, Serve, sequence
from tests.sdk.test_client_task_ops import serve as serve

BASE = f"/api/v1/tenants/{TENANT}/workflows"
CRON_ID = str(uuid.UUID(int=1))
SCHED_ID = str(uuid.UUID(int=2))
IDS = [str(uuid.UUID(int=i + 10)) for i in range(1200)]


def cron_json(**fields: Any) -> dict[str, Any]:
    row = {
        "metadata": {"id": CRON_ID, "createdAt": "2024-01-02T03:04:05.123456789Z", "updatedAt": "2024-01-02T03:04:05Z"},
        "tenantId": TENANT,
        "workflowVersionId": str(uuid.UUID(int=3)),
        "workflowId": str(uuid.UUID(int=4)),
        "workflowName": "ns_nightly/report",
        "cron": "0 3 * * *",
        "name": "n1",
        "input": {"a": 1},
        "additionalMetadata": {"k": "v"},
        "enabled": True,
        "method": "API",
        "priority": 1,
    }
    row.update(fields)
    return {k: v for k, v in row.items() if v is not None}


def sched_json(**fields: Any) -> dict[str, Any]:
    row = {
        "metadata": {"id": SCHED_ID, "createdAt": "2024-01-02T03:04:05Z", "updatedAt": "2024-01-02T03:04:05Z"},
        "tenantId": TENANT,
        "workflowVersionId": str(uuid.UUID(int=3)),
        "workflowId": str(uuid.UUID(int=4)),
        "workflowName": "ns_once",
        "triggerAt": "2030-01-02T03:04:05.123456789Z",
        "input": {},
        "additionalMetadata": {},
        "method": "API",
        "priority": 2,
    }
    row.update(fields)
    return row


def answer(value: Any, status: str = "200 OK") -> bytes:
    return http_answer(json.dumps(value).encode(), status=status)


NO_CONTENT = http_answer(b"", status="204 No Content", content_type=None)


@pytest.fixture
def client(make_token: MakeToken) -> Callable[[BodyServer], Hatchet]:
    made: list[Hatchet] = []

    def make(server: BodyServer) -> Hatchet:
        hatchet = Hatchet(
            token=make_token(server_url=server.url), tls_strategy="none", namespace="ns", rest_timeout=5, environ={}
        )
        made.append(hatchet)
        return hatchet

    yield make  # type: ignore[misc]
    for hatchet in made:
        hatchet.close()


# --- crons ---


def test_cron_create_sends_the_namespaced_quoted_name_and_reads_the_row(
    serve: Serve, client: Callable[[BodyServer], Hatchet]
) -> None:
    server = serve(sequence(answer(cron_json())))
    row = client(server).cron.create("nightly/report", "n1", " 0 3 * * * ", {"a": 1}, {"k": "v"}, priority=1)
    [request] = server.requests
    assert (request.method, request.path) == ("POST", f"{BASE}/ns_nightly%2Freport/crons")
    assert json.loads(server.bodies[0]) == {
        "cronName": "n1",
        "cronExpression": "0 3 * * *",
        "input": {"a": 1},
        "additionalMetadata": {"k": "v"},
        "priority": 1,
    }
    assert (row.id, row.workflow_name, row.name, row.expression, row.enabled, row.method) == (
        CRON_ID,
        "ns_nightly/report",
        "n1",
        "0 3 * * *",
        True,
        "API",
    )
    assert (row.input, row.additional_metadata, row.created_at) == (
        {"a": 1},
        {"k": "v"},
        "2024-01-02T03:04:05.123456789Z",
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"enabled": None}, "the answer.enabled is missing or null, not a boolean"),
        ({"method": "CODE"}, "the answer.method 'CODE' is not DEFAULT or API"),
        ({"cron": 5}, "the answer.cron is a number, not a string"),
        ({"priority": 9}, "the answer.priority 9 is not between 1 and 3"),
        ({"metadata": "x"}, "the answer.metadata is a string, not an object"),
    ],
)
def test_a_cron_answer_of_the_wrong_shape_is_a_clean_error(
    serve: Serve, client: Callable[[BodyServer], Hatchet], fields: dict[str, Any], problem: str
) -> None:
    server = serve(sequence(answer(cron_json(**fields))))
    with pytest.raises(CronError) as info:
        client(server).cron.get(CRON_ID)
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)


def test_cron_list_reads_every_page(serve: Serve, client: Callable[[BodyServer], Hatchet]) -> None:
    page = {"current_page": 1, "num_pages": 2, "next_page": 2}
    rows = [cron_json(metadata={"id": str(uuid.UUID(int=i))}) for i in range(3)]
    server = serve(
        sequence(
            answer({"rows": rows[:2], "pagination": page}),
            answer({"rows": rows[2:], "pagination": {**page, "current_page": 2}}),
        )
    )
    listed = list(client(server).cron.list("nightly", "n1", {"team": "a"}, limit=2))
    assert [row.id for row in listed] == [str(uuid.UUID(int=i)) for i in range(3)]
    assert [r.query for r in server.requests] == [
        [
            ("workflowName", "ns_nightly"),
            ("cronName", "n1"),
            ("additionalMetadata", "team:a"),
            ("offset", str(offset)),
            ("limit", "2"),
        ]
        for offset in (0, 2)
    ]


def test_delete_and_enable_take_no_content(serve: Serve, client: Callable[[BodyServer], Hatchet]) -> None:
    server = serve(sequence(NO_CONTENT))
    hatchet = client(server)
    hatchet.cron.delete(CRON_ID)
    hatchet.cron.set_enabled(CRON_ID, False)
    assert [(r.method, r.path) for r in server.requests] == [
        ("DELETE", f"{BASE}/crons/{CRON_ID}"),
        ("PATCH", f"{BASE}/crons/{CRON_ID}"),
    ]
    assert json.loads(server.bodies[1]) == {"enabled": False}


def test_errors_name_the_url_and_never_the_token(serve: Serve, client: Callable[[BodyServer], Hatchet]) -> None:
    def echo_token(conn: socket.socket, request: Request) -> None:
        token = request.headers["authorization"].removeprefix("Bearer ")
        conn.sendall(answer({"errors": [{"description": f"bad token {token}"}]}, status="401 Unauthorized"))

    server = serve(echo_token)
    hatchet = client(server)
    with pytest.raises(CronError) as info:
        hatchet.cron.get(CRON_ID)
    assert hatchet.config.token not in str(info.value)
    assert str(info.value) == f"GET {server.url}{BASE}/crons/{CRON_ID}: HTTP 401 Unauthorized: bad token <token>"


def test_refused_before_sending(serve: Serve, client: Callable[[BodyServer], Hatchet]) -> None:
    server = serve(sequence(answer({})))
    hatchet = client(server)
    with pytest.raises(CronExpressionError, match="hour field '24': 24 is above the maximum 23"):
        hatchet.cron.create("w", "n", "0 24 * * *", {}, {})
    with pytest.raises(CronError, match="cron_name must be a non-empty string"):
        hatchet.cron.create("w", "", "* * * * *", {}, {})
    with pytest.raises(CronError, match="priority must be 1, 2 or 3"):
        hatchet.cron.create("w", "n", "* * * * *", {}, {}, priority=0)
    with pytest.raises(CronError, match="input cannot be sent as JSON"):
        hatchet.cron.create("w", "n", "* * * * *", {"x": {1, 2}}, {})
    with pytest.raises(CronError, match="cron_id is not a UUID: 'nope'"):
        hatchet.cron.get("nope")
    with pytest.raises(CronError, match="neither may contain one"):
        list(hatchet.cron.list(additional_metadata={"at": "12:00"}))
    with pytest.raises(ScheduleError, match="trigger_at must be a datetime, not str"):
        hatchet.scheduled.create("w", "2030-01-01", {}, {})  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="unknown statuses"):
        list(hatchet.scheduled.list(statuses=["DONE"]))
    with pytest.raises(ScheduleError, match=r"scheduled_ids\[1\] is not a UUID"):
        hatchet.scheduled.bulk_delete([IDS[0], "x"])
    with pytest.raises(ScheduleError, match="batch must be an integer between 1 and 500"):
        hatchet.scheduled.bulk_delete(IDS, batch=501)
    assert server.requests == []


# --- scheduled runs ---


def test_scheduled_create_and_its_nine_digit_times(serve: Serve, client: Callable[[BodyServer], Hatchet]) -> None:
    server = serve(sequence(answer(sched_json())))
    row = client(server).scheduled.create("once", datetime(2030, 1, 2, 3, 4, 5), {}, {}, priority=2)
    assert server.requests[0].path == f"{BASE}/ns_once/scheduled"
    assert json.loads(server.bodies[0]) == {
        "triggerAt": "2030-01-02T03:04:05Z",
        "input": {},
        "additionalMetadata": {},
        "priority": 2,
    }
    assert row.trigger_at == datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert (row.run_id, row.run_status, row.priority) == (None, None, 2)


def test_a_scheduled_answer_with_a_bad_time_is_a_clean_error(
    serve: Serve, client: Callable[[BodyServer], Hatchet]
) -> None:
    server = serve(sequence(answer(sched_json(triggerAt="tomorrow"))))
    with pytest.raises(ScheduleError) as info:
        client(server).scheduled.get(SCHED_ID)
    assert info.value.problem == "the answer.triggerAt 'tomorrow' is not an RFC 3339 date-time"


def test_scheduled_list_by_workflow_name_looks_the_id_up_first(
    serve: Serve, client: Callable[[BodyServer], Hatchet]
) -> None:
    workflows = {"rows": [{"metadata": {"id": str(uuid.UUID(int=4))}, "name": "ns_once"}]}
    server = serve(sequence(answer(workflows), answer({"rows": [sched_json()]})))
    [row] = client(server).scheduled.list("once", statuses=["SCHEDULED"])
    assert row.id == SCHED_ID
    lookup, listing = server.requests
    assert (lookup.path, ("name", "ns_once") in lookup.query) == (BASE, True)
    assert listing.path == f"{BASE}/scheduled"
    assert listing.query[:2] == [("workflowId", str(uuid.UUID(int=4))), ("statuses", "SCHEDULED")]


def _deleting(server_ref: list[BodyServer], fail_at: int | None = None) -> Callable[[socket.socket, Request], None]:
    def handle(conn: socket.socket, request: Request) -> None:
        n = len(server_ref[0].requests) - 1
        if n == fail_at:
            conn.sendall(answer({"errors": [{"description": "boom"}]}, status="400 Bad Request"))
            return
        ids = json.loads(server_ref[0].bodies[n])["scheduledWorkflowRunIds"]
        conn.sendall(answer({"deletedIds": ids[1:], "errors": [{"id": ids[0], "error": "not found"}]}))

    return handle


def test_bulk_delete_is_sent_in_batches_of_500(serve: Serve, client: Callable[[BodyServer], Hatchet]) -> None:
    ref: list[BodyServer] = []
    server = serve(_deleting(ref))
    ref.append(server)
    result = client(server).scheduled.bulk_delete(IDS)
    sizes = [len(json.loads(body)["scheduledWorkflowRunIds"]) for body in server.bodies]
    assert sizes == [500, 500, 200]
    assert {r.path for r in server.requests} == {f"{BASE}/scheduled/bulk-delete"}
    assert result.errors == tuple((IDS[i], "not found") for i in (0, 500, 1000))
    assert len(result.deleted) == 1197


def test_a_failed_batch_reports_what_earlier_ones_deleted(
    serve: Serve, client: Callable[[BodyServer], Hatchet]
) -> None:
    ref: list[BodyServer] = []
    server = serve(_deleting(ref, fail_at=1))
    ref.append(server)
    with pytest.raises(ScheduleError) as info:
        client(server).scheduled.bulk_delete(IDS)
    assert info.value.status == 400
    assert info.value.deleted == IDS[1:500]
    assert "(499 deleted by the requests before this one)" in str(info.value)


# --- events (a scripted gRPC server) ---


class EventsServer:
    """A gRPC server on 127.0.0.1 answering BulkPush with one event per event sent; `fail_at` fails that call."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sizes: list[int] = []
        self.keys: list[str] = []
        self._fail_at = fail_at
        self._server = grpc.server(futures.ThreadPoolExecutor(4))
        handler = grpc.method_handlers_generic_handler(
            "EventsService",
            {
                "BulkPush": grpc.unary_unary_rpc_method_handler(
                    self._bulk,
                    request_deserializer=events_pb2.BulkPushEventRequest.FromString,
                    response_serializer=events_pb2.Events.SerializeToString,
                )
            },
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def _bulk(self, request: Any, context: grpc.ServicerContext) -> Any:
        if len(self.sizes) == self._fail_at:
            context.abort(grpc.StatusCode.UNAVAILABLE, "going away")
        self.sizes.append(len(request.events))
        self.keys += [e.key for e in request.events]
        return events_pb2.Events(
            events=[events_pb2.Event(event_id=str(uuid.uuid4()), key=e.key, payload=e.payload) for e in request.events]
        )

    def close(self) -> None:
        self._server.stop(0).wait()


@pytest.fixture
def events_server() -> Iterator[Callable[..., EventsServer]]:
    servers: list[EventsServer] = []

    def start(fail_at: int | None = None) -> EventsServer:
        servers.append(EventsServer(fail_at))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _grpc_client(make_token: MakeToken, server: EventsServer) -> Hatchet:
    token = make_token(grpc_broadcast_address=f"127.0.0.1:{server.port}")
    return Hatchet(token=token, tls_strategy="none", namespace="ns", connect_timeout=5, environ={})


def test_bulk_push_is_sent_in_calls_of_1000(make_token: MakeToken, events_server: Callable[..., EventsServer]) -> None:
    server = events_server()
    with _grpc_client(make_token, server) as hatchet:
        pushed = hatchet.event.bulk_push([{"key": f"k{i}", "payload": {"i": i}} for i in range(2001)])
    assert server.sizes == [1000, 1000, 1]
    assert server.keys[:2] == ["ns_k0", "ns_k1"]  # the namespace is applied to keys
    assert [e.payload for e in pushed[:2]] == [{"i": 0}, {"i": 1}] and len(pushed) == 2001


def test_a_failed_bulk_push_call_reports_what_was_pushed(
    make_token: MakeToken, events_server: Callable[..., EventsServer]
) -> None:
    server = events_server(fail_at=1)
    with _grpc_client(make_token, server) as hatchet, pytest.raises(EventPushError) as info:
        hatchet.event.bulk_push([{"key": "k", "payload": {}}] * 1500)
    assert (info.value.code, info.value.applied) == ("UNAVAILABLE", None)
    assert len(info.value.pushed) == 1000
    assert "(events 1000..1499; 1000 pushed by the calls before)" in str(info.value)
    assert server.sizes == [1000]  # the failed call is not sent again
