"""The client's run metrics, cancel and replay, and the listing's new filters, against a scripted server on
127.0.0.1: what is sent (batches of ids, repeated parameters), the shape of what is answered (a bad answer is a
clean TaskOpsError), and retries of 429/503 answers and connection resets within the request's one deadline."""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hatchet_client import (
    RUN_STATUSES,
    Hatchet,
    ListRunsError,
    RestClient,
    RestError,
    RestLimits,
    TaskOpsError,
    cancel_runs,
    list_runs,
    replay_runs,
    run_metrics,
)

from tests.sdk.conftest import MakeToken
from tests.sdk.scripted_http import Handler, Request, ScriptedServer, http_answer, json_answer
from tests.sdk.scripted_http import _parse as parse_head
from tests.sdk.test_client_rest import HOUR_AGO, TENANT, TOKEN

DEADLINE = 3.0
SLACK = 1.0
LIMITS = RestLimits(timeout=DEADLINE)
IDS = [str(uuid.UUID(int=i + 1)) for i in range(2500)]
BASE = f"/api/v1/stable/tenants/{TENANT}"
Serve = Callable[[Handler], "BodyServer"]


class BodyServer(ScriptedServer):
    """A scripted server that also keeps each request's body (`bodies`, in arrival order)."""

    def __init__(self, handler: Handler) -> None:
        self.bodies: list[bytes] = []
        super().__init__(handler)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                request = parse_head(head)
                length = int(request.headers.get("content-length", "0"))
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                self.requests.append(request)
                self.bodies.append(body)
                self._handler(conn, request)
            except OSError:
                return


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[BodyServer] = []

    def start(handler: Handler) -> BodyServer:
        server = BodyServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def echoing(server_ref: list[BodyServer]) -> Handler:
    """Answers a cancel or replay by echoing the ids it was sent (BodyServer keeps the bodies)."""

    def handle(conn: socket.socket, request: Request) -> None:
        body = json.loads(server_ref[0].bodies[len(server_ref[0].requests) - 1])
        conn.sendall(http_answer(json.dumps({"ids": body["externalIds"]}).encode()))

    return handle


def echo_server(serve: Serve) -> BodyServer:
    ref: list[BodyServer] = []
    server = serve(echoing(ref))
    ref.append(server)
    return server


def sequence(*answers: bytes) -> Handler:
    """Answers the n-th request with the n-th answer (the last one again after that)."""
    count = [0]

    def handle(conn: socket.socket, request: Request) -> None:
        n = count[0]
        count[0] += 1
        answer = answers[min(n, len(answers) - 1)]
        if answer == b"RESET":  # close with RST: the client sees ECONNRESET
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        conn.sendall(answer)

    return handle


METRICS = [
    {"status": "CANCELLED", "count": 1},
    {"status": "COMPLETED", "count": 5},
    {"status": "RUNNING", "count": 2, "runningDetailCount": {"evicted": 0, "onWorker": 2}},
]


# --- run_metrics ---


def test_run_metrics_has_every_status(serve: Serve) -> None:
    server = serve(json_answer(METRICS))
    counts = run_metrics(
        server.url, TENANT, TOKEN, {"batch": "b1", "team": "a:b"}, since=HOUR_AGO, until=HOUR_AGO, limits=LIMITS
    )
    assert counts == {"QUEUED": 0, "RUNNING": 2, "COMPLETED": 5, "CANCELLED": 1, "FAILED": 0}
    assert list(counts) == list(RUN_STATUSES)
    [request] = server.requests
    assert (request.method, request.path) == ("GET", f"{BASE}/task-metrics")
    since = HOUR_AGO.isoformat().replace("+00:00", "Z")
    assert request.query == [
        ("since", since),
        ("until", since),
        ("additional_metadata", "batch:b1"),
        ("additional_metadata", "team:a:b"),
    ]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"rows": []}, "the answer is an object, not a list"),
        ([1], "[0] is a number, not an object"),
        ([{"count": 1}], "[0].status is missing or null, not a string"),
        (
            [{"status": "EVICTED", "count": 1}],
            "[0].status 'EVICTED' is not one of QUEUED, RUNNING, COMPLETED, CANCELLED, FAILED",
        ),
        ([{"status": "FAILED", "count": 1}, {"status": "FAILED", "count": 2}], "[1].status FAILED is listed twice"),
        ([{"status": "FAILED"}], "[0].count is missing, not a count"),
        ([{"status": "FAILED", "count": -1}], "[0].count is -1, not a count"),
        ([{"status": "FAILED", "count": "3"}], "[0].count is a string, not an integer"),
        ([{"status": "FAILED", "count": True}], "[0].count is a boolean, not an integer"),
        (
            [{"status": "RUNNING", "count": 1, "runningDetailCount": []}],
            "[0].runningDetailCount is a list, not an object",
        ),
    ],
)
def test_run_metrics_refuses_answers_of_the_wrong_shape(serve: Serve, answer: Any, problem: str) -> None:
    server = serve(json_answer(answer))
    with pytest.raises(TaskOpsError) as info:
        run_metrics(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, limits=LIMITS)
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)
    assert str(info.value) == f"GET {server.url}{BASE}/task-metrics: {problem}"


def test_a_metadata_key_with_a_colon_is_refused_before_sending(serve: Serve) -> None:
    server = serve(json_answer(METRICS))
    with pytest.raises(TaskOpsError, match="cannot filter on metadata key 'a:b'"):
        run_metrics(server.url, TENANT, TOKEN, {"a:b": "c"}, since=HOUR_AGO, limits=LIMITS)
    assert server.requests == []


# --- cancel and replay ---


@pytest.mark.parametrize(("send", "op"), [(cancel_runs, "cancel"), (replay_runs, "replay")])
def test_ids_go_in_batches_in_order(serve: Serve, send: Callable[..., list[str]], op: str) -> None:
    server = echo_server(serve)
    assert send(server.url, TENANT, TOKEN, IDS, limits=LIMITS) == IDS
    assert [(r.method, r.path) for r in server.requests] == [("POST", f"{BASE}/tasks/{op}")] * 3
    assert [json.loads(body) for body in server.bodies] == [
        {"externalIds": IDS[:1000]},
        {"externalIds": IDS[1000:2000]},
        {"externalIds": IDS[2000:]},
    ]
    assert server.requests[0].headers["content-type"] == "application/json"
    assert send(server.url, TENANT, TOKEN, IDS[:5], batch=2, limits=LIMITS) == IDS[:5]
    assert [len(json.loads(body)["externalIds"]) for body in server.bodies[3:]] == [2, 2, 1]
    assert send(server.url, TENANT, TOKEN, [], limits=LIMITS) == []
    assert len(server.requests) == 6  # nothing to send: no request


@pytest.mark.parametrize(
    ("ids", "batch", "problem"),
    [
        (["not-a-uuid"], 1000, "ids[0] is not a UUID: 'not-a-uuid'"),
        ([IDS[0], 7], 1000, "ids[1] is not a string: int"),
        (IDS[0], 1000, "ids must be a sequence of ids, not one string"),
        (IDS[:1], 0, "batch must be an integer between 1 and 10000, not 0"),
        (IDS[:1], 10_001, "batch must be an integer between 1 and 10000, not 10001"),
    ],
)
def test_bad_ids_and_batches_are_refused_before_sending(serve: Serve, ids: Any, batch: int, problem: str) -> None:
    server = echo_server(serve)
    with pytest.raises(TaskOpsError) as info:
        cancel_runs(server.url, TENANT, TOKEN, ids, batch=batch)
    assert (info.value.reason, str(info.value)) == ("invalid_request", problem)
    assert server.requests == []


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([], "the answer is a list, not an object"),
        ({"ids": "x"}, "ids is a string, not a list"),
        ({"ids": [IDS[0], 7]}, "ids[1] is not an id (a string)"),
    ],
)
def test_an_echo_of_the_wrong_shape_is_refused(serve: Serve, answer: Any, problem: str) -> None:
    server = serve(json_answer(answer))
    with pytest.raises(TaskOpsError) as info:
        replay_runs(server.url, TENANT, TOKEN, IDS[:3], limits=LIMITS)
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)
    assert str(info.value).startswith(f"POST {server.url}{BASE}/tasks/replay: ")


def test_an_answer_without_ids_echoes_none(serve: Serve) -> None:
    server = serve(json_answer({}))  # `ids` is optional in Hatchet's schema
    assert cancel_runs(server.url, TENANT, TOKEN, IDS[:3], limits=LIMITS) == []


def test_a_failed_batch_keeps_what_the_earlier_ones_echoed(serve: Serve) -> None:
    refused = http_answer(b'{"errors":[{"description":"invalid external id"}]}', status="400 Bad Request")
    server = serve(sequence(http_answer(json.dumps({"ids": IDS[:2]}).encode()), refused))
    with pytest.raises(TaskOpsError) as info:
        cancel_runs(server.url, TENANT, TOKEN, IDS[:4], batch=2, limits=LIMITS)
    assert info.value.echoed == IDS[:2] and info.value.status == 400
    assert (
        info.value.problem == "HTTP 400 Bad Request: invalid external id (2 ids echoed by the requests before this one)"
    )
    assert len(server.requests) == 2  # a 400 is not retried


# --- retries within the deadline ---

TOO_MANY = http_answer(
    b'{"errors":[{"description":"slow down"}]}', status="429 Too Many Requests", extra="Retry-After: 1\r\n"
)
UNAVAILABLE = http_answer(b"{}", status="503 Service Unavailable")


def test_a_429_is_retried_after_what_retry_after_says(serve: Serve) -> None:
    server = serve(sequence(TOO_MANY, http_answer(json.dumps(METRICS).encode())))
    started = time.monotonic()
    counts = run_metrics(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, limits=LIMITS)
    elapsed = time.monotonic() - started
    assert counts["COMPLETED"] == 5 and len(server.requests) == 2
    assert 1.0 <= elapsed < 1.0 + SLACK


def test_a_cancel_is_retried_after_a_503_and_a_reset(serve: Serve) -> None:
    echoed = http_answer(json.dumps({"ids": IDS[:3]}).encode())
    server = serve(sequence(UNAVAILABLE, b"RESET", echoed))
    assert cancel_runs(server.url, TENANT, TOKEN, IDS[:3], limits=LIMITS) == IDS[:3]
    assert len(server.requests) == 3
    assert server.bodies[0] == server.bodies[2]  # the same request, sent again


def test_a_post_that_is_not_idempotent_is_not_sent_again_after_a_reset(serve: Serve) -> None:
    server = serve(sequence(b"RESET", http_answer(b"{}")))
    client = RestClient(server.url, TOKEN, limits=LIMITS)
    with pytest.raises(RestError) as info:
        client.post("/api/v1/x", {"a": 1}, idempotent=False)
    assert info.value.reason == "unreachable" and "connection reset" in info.value.problem
    assert len(server.requests) == 1
    assert client.post("/api/v1/x", {"a": 1}, idempotent=False).value == {}  # a 2xx the first time is fine


def test_a_retry_after_beyond_the_deadline_fails_at_once(serve: Serve) -> None:
    later = http_answer(b"{}", status="429 Too Many Requests", extra="Retry-After: 20\r\n")
    server = serve(sequence(later, http_answer(json.dumps(METRICS).encode())))
    started = time.monotonic()
    with pytest.raises(TaskOpsError) as info:
        run_metrics(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, limits=LIMITS)
    assert time.monotonic() - started < SLACK
    assert (info.value.reason, info.value.status, len(server.requests)) == ("http_status", 429, 1)


def test_retries_end_at_the_deadline(serve: Serve) -> None:
    server = serve(sequence(UNAVAILABLE))
    started = time.monotonic()
    with pytest.raises(TaskOpsError) as info:
        replay_runs(server.url, TENANT, TOKEN, IDS[:1], limits=RestLimits(timeout=1.5))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.5
    attempts = len(server.requests)
    assert attempts >= 3
    assert info.value.problem == f"HTTP 503 Service Unavailable: {{}} (after {attempts} attempts)"


@pytest.mark.parametrize("status", ["500 Internal Server Error", "401 Unauthorized", "404 Not Found"])
def test_other_statuses_are_not_retried(serve: Serve, status: str) -> None:
    server = serve(json_answer({}, status=status))
    with pytest.raises(TaskOpsError) as info:
        cancel_runs(server.url, TENANT, TOKEN, IDS[:1], limits=LIMITS)
    assert info.value.reason == "http_status" and len(server.requests) == 1


# --- the listing's new filters and fields ---


def _row(**changes: Any) -> dict[str, Any]:
    row = {
        "workflowRunExternalId": IDS[0],
        "status": "FAILED",
        "createdAt": "2026-01-01T00:00:00Z",
        "displayName": "W",
        "input": {},
        "additionalMetadata": {"k": "v"},
        "errorMessage": "boom",
        "retryCount": 2,
        "startedAt": "2026-01-01T00:00:01Z",
        "finishedAt": "2026-01-01T00:00:02Z",
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not None}


def test_the_listing_sends_statuses_and_payloads_and_reads_outcomes(serve: Serve) -> None:
    answer = {
        "pagination": {"current_page": 1, "num_pages": 1},
        "rows": [_row(), _row(retryCount=None, errorMessage=None)],
    }
    server = serve(json_answer(answer))
    rows = list(
        list_runs(
            server.url,
            TENANT,
            TOKEN,
            {"k": "v"},
            since=HOUR_AGO,
            statuses={"FAILED", "CANCELLED"},
            include_payloads=False,
            limits=LIMITS,
        )
    )
    assert [(r.error_message, r.retry_count, r.started_at, r.finished_at) for r in rows] == [
        ("boom", 2, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"),
        (None, 0, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"),
    ]
    query = server.requests[0].query
    assert [v for k, v in query if k == "statuses"] == ["CANCELLED", "FAILED"]
    assert ("include_payloads", "false") in query
    list(list_runs(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, limits=LIMITS))
    # Hatchet leaves payloads out unless asked: the default asks
    assert ("include_payloads", "true") in server.requests[1].query
    assert not [k for k, _ in server.requests[1].query if k == "statuses"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (_row(retryCount="2"), "rows[0].retryCount is a string, not an integer"),
        (_row(errorMessage=["boom"]), "rows[0].errorMessage is a list, not a string"),
        (_row(startedAt=5), "rows[0].startedAt is a number, not a string"),
        (_row(finishedAt={}), "rows[0].finishedAt is an object, not a string"),
    ],
)
def test_the_listing_refuses_outcome_fields_of_the_wrong_shape(serve: Serve, row: Any, problem: str) -> None:
    server = serve(json_answer({"rows": [row]}))
    with pytest.raises(ListRunsError) as info:
        list(list_runs(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, limits=LIMITS))
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)


@pytest.mark.parametrize(
    ("statuses", "problem"),
    [
        ("FAILED", "statuses must be a collection of statuses, not the string 'FAILED'"),
        (["FAILED", "DONE"], "unknown statuses 'DONE' (known: QUEUED, RUNNING, COMPLETED, CANCELLED, FAILED)"),
    ],
)
def test_bad_statuses_are_refused_before_sending(serve: Serve, statuses: Any, problem: str) -> None:
    server = serve(json_answer({"rows": []}))
    with pytest.raises(ListRunsError) as info:
        list(list_runs(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, statuses=statuses, limits=LIMITS))
    assert str(info.value) == problem and server.requests == []


# --- the Hatchet client ---


def test_the_client_uses_its_server_tenant_and_token(serve: Serve, make_token: MakeToken) -> None:
    metrics = serve(json_answer(METRICS))
    with Hatchet(token=make_token(server_url=metrics.url), tls_strategy="none", environ={}) as hatchet:
        assert hatchet.run_metrics({"k": "v"}, since=HOUR_AGO)["RUNNING"] == 2
    echo = echo_server(serve)
    with Hatchet(token=make_token(server_url=echo.url), tls_strategy="none", environ={}) as hatchet:
        assert hatchet.cancel_runs(IDS[:3]) == IDS[:3]
        assert hatchet.replay_runs(IDS[:3], batch=2) == IDS[:3]
    tenant = "707d0855-80ab-4e1f-a156-f1c4546cbf52"  # the token's `sub`
    assert metrics.requests[0].path == f"/api/v1/stable/tenants/{tenant}/task-metrics"
    assert [r.path for r in echo.requests] == [
        f"/api/v1/stable/tenants/{tenant}/tasks/{op}" for op in ("cancel", "replay", "replay")
    ]
    assert all(r.headers["authorization"].startswith("Bearer ey") for r in echo.requests)
