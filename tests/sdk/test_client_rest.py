"""Every REST request is bounded: a misbehaving server on 127.0.0.1 gets a clean RestError within the deadline.

Each test scripts the server's answer byte by byte (tests/sdk/scripted_http.py) and gives the client a small
deadline or size cap; the test's own duration is bounded by that deadline. The error names the URL path, never
the token.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hatchet_client import (
    ListRunsError,
    ListWorkflowsError,
    RestClient,
    RestError,
    RestLimits,
    check_workflows,
    list_run_ids,
    list_runs,
    list_workflows,
)
from hatchet_client.errors import ConfigError

from tests.sdk.scripted_http import Handler, Request, ScriptedServer, http_answer, json_answer

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.c2VjcmV0LXNpZ25hdHVyZS1ub3QtdG8tbGVhaw"
TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"
DEADLINE = 1.5
SLACK = 1.5  # scheduling, thread start-up: the error comes at the deadline, not after every slow read
HOUR_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(handler: Handler) -> ScriptedServer:
        server = ScriptedServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def get(server: ScriptedServer, **limits: Any) -> tuple[RestError, float]:
    """GET a path on the server with small limits; the RestError it must raise, and how long it took."""
    client = RestClient(server.url, TOKEN, limits=RestLimits(**{"timeout": DEADLINE, **limits}))
    started = time.monotonic()
    with pytest.raises(RestError) as info:
        client.get("/api/v1/things", [("q", "secret-query")])
    elapsed = time.monotonic() - started
    error = info.value
    assert TOKEN not in str(error) and "secret-query" not in str(error)
    assert str(error).startswith(f"GET {server.url}/api/v1/things: ")
    assert error.url == f"{server.url}/api/v1/things"
    return error, elapsed


# --- transport failures ---


def test_connection_refused_is_unreachable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    client = RestClient(f"http://127.0.0.1:{port}", TOKEN, limits=RestLimits(timeout=DEADLINE))
    with pytest.raises(RestError) as info:
        client.get("/api/v1/things")
    assert info.value.reason == "unreachable"
    assert str(info.value) == f"GET http://127.0.0.1:{port}/api/v1/things: cannot reach the server: connection refused"


def test_an_answer_that_is_not_http(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(lambda conn, req: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n"))
    error, elapsed = get(server)
    assert error.reason == "not_http"
    assert "the answer is not HTTP" in error.problem
    assert elapsed < DEADLINE


def test_a_server_that_closes_without_answering(serve: Callable[[Handler], ScriptedServer]) -> None:
    error, _ = get(serve(lambda conn, req: None))
    assert error.reason == "unreachable"
    assert error.problem == "the server closed the connection without answering"


def test_a_body_cut_short_of_its_content_length(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(lambda conn, req: conn.sendall(http_answer(b'{"rows": [1, 2', length=1000)))
    error, elapsed = get(server)
    assert (error.reason, error.problem) == ("truncated", "the answer ended after 14 of the 1000 bytes announced")
    assert elapsed < DEADLINE


def test_a_chunked_body_cut_short(serve: Callable[[Handler], ScriptedServer]) -> None:
    def handle(conn: socket.socket, req: Request) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        conn.sendall(head.encode() + b"5\r\n[1, 2\r\n")

    error, _ = get(serve(handle))
    assert error.reason == "truncated"
    assert error.problem.startswith("the answer ended after ")


def test_conflicting_or_bogus_content_lengths_are_not_http(serve: Callable[[Handler], ScriptedServer]) -> None:
    error, _ = get(serve(lambda conn, req: conn.sendall(http_answer(b"[]", extra="Content-Length: 5\r\n"))))
    assert (error.reason, error.problem) == ("not_http", "the answer has conflicting Content-Length headers")
    error, _ = get(
        serve(lambda conn, req: conn.sendall(http_answer(b"[]", length=None, extra="Content-Length: 2x\r\n")))
    )
    assert (error.reason, error.problem) == ("not_http", "the answer's Content-Length '2x' is not a number")


def test_a_body_announced_larger_than_the_cap_is_refused_before_reading(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    server = serve(lambda conn, req: conn.sendall(http_answer(b"[", length=10**12)))
    error, elapsed = get(server, max_response_bytes=1024)
    assert (error.reason, error.problem) == (
        "too_large",
        "the answer announces 1000000000000 bytes, more than the 1024 allowed",
    )
    assert elapsed < DEADLINE


@pytest.mark.parametrize("framing", ["close-delimited", "chunked"])
def test_an_endless_body_stops_at_the_cap_without_growing_memory(
    serve: Callable[[Handler], ScriptedServer], framing: str
) -> None:
    cap = 1024 * 1024
    sent = [0]

    def handle(conn: socket.socket, req: Request) -> None:
        chunked = framing == "chunked"
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        conn.sendall((head + ("Transfer-Encoding: chunked\r\n" if chunked else "") + "\r\n").encode())
        block = b"[" + b" " * 65535
        piece = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
        while not server.stopping.is_set():
            conn.sendall(piece)  # raises once the client hangs up
            sent[0] += len(block)

    server = serve(handle)
    tracemalloc.start()
    try:
        error, elapsed = get(server, max_response_bytes=cap, timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (error.reason, error.problem) == ("too_large", f"the answer is larger than the {cap} bytes allowed")
    assert sent[0] > cap
    assert peak < 6 * cap  # the cap, a chunk and a join: not what the server sent
    assert elapsed < 10


def test_a_body_dripping_a_byte_a_second_fails_at_the_deadline(serve: Callable[[Handler], ScriptedServer]) -> None:
    def handle(conn: socket.socket, req: Request) -> None:
        conn.sendall(http_answer(b"", length=100))
        while not server.stopping.wait(0.3):
            conn.sendall(b" ")

    server = serve(handle)
    error, elapsed = get(server)
    assert (error.reason, error.problem) == ("timeout", f"no complete answer within {DEADLINE:g}s")
    assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK


def test_headers_dripping_forever_fail_at_the_deadline(serve: Callable[[Handler], ScriptedServer]) -> None:
    def handle(conn: socket.socket, req: Request) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not server.stopping.wait(0.2):
            conn.sendall(b"a")

    server = serve(handle)
    error, elapsed = get(server)
    assert error.reason == "timeout"
    assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK


def test_a_server_that_never_answers_fails_at_the_deadline(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(lambda conn, req: server.stopping.wait(30) and None)
    error, elapsed = get(server)
    assert error.reason == "timeout"
    assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK


def test_a_tls_handshake_that_never_ends_fails_at_the_deadline() -> None:
    silent = ScriptedServer(lambda conn, req: None)  # reads a request head that never comes: says nothing
    try:
        client = RestClient(f"https://127.0.0.1:{silent.port}", TOKEN, limits=RestLimits(timeout=DEADLINE))
        started = time.monotonic()
        with pytest.raises(RestError) as info:
            client.get("/api/v1/things")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert (info.value.reason, info.value.problem) == ("timeout", f"no complete answer within {DEADLINE:g}s")
    assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK


def test_plain_http_spoken_to_an_https_url_is_a_failed_handshake() -> None:
    plain = socket.create_server(("127.0.0.1", 0))
    port = plain.getsockname()[1]

    def answer_anything() -> None:
        conn, _ = plain.accept()
        with conn:
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_anything, daemon=True)
    thread.start()
    try:
        with pytest.raises(RestError) as info:
            RestClient(f"https://127.0.0.1:{port}", TOKEN, limits=RestLimits(timeout=DEADLINE)).get("/x")
    finally:
        thread.join(timeout=5)
        plain.close()
    assert info.value.reason == "unreachable"
    assert info.value.problem.startswith("TLS handshake failed: ")


# --- answers that are HTTP but not what was asked ---


def test_a_non_2xx_status_names_the_status_and_hatchets_description(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    answer = {"errors": [{"description": f"no tenant for token {TOKEN}"}]}
    error, _ = get(serve(json_answer(answer, status="403 Forbidden")))
    assert (error.reason, error.status) == ("http_status", 403)
    assert error.problem == "HTTP 403 Forbidden: no tenant for token <token>"  # a server echoing the token


def test_redirects_are_not_followed(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(
        lambda conn, req: conn.sendall(http_answer(b"", status="302 Found", extra="Location: http://127.0.0.1:9/\r\n"))
    )
    error, _ = get(server)
    assert (error.reason, error.status) == ("http_status", 302)
    assert error.problem == "HTTP 302 Found (redirects are not followed)"
    assert len(server.requests) == 1


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None])
def test_an_answer_that_is_not_declared_json(
    serve: Callable[[Handler], ScriptedServer], content_type: str | None
) -> None:
    error, _ = get(serve(lambda conn, req: conn.sendall(http_answer(b"<html>", content_type=content_type))))
    assert error.reason == "content_type"
    assert error.problem == f"the answer is not JSON (Content-Type: {'text/html' if content_type else 'none'})"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"rows": [', "the answer is not JSON: Expecting value: line 1 column 11 (char 10)"),
        (b"\xff\xfe[]", "the answer is not UTF-8 text"),
        (b'{"n": NaN}', "the answer is not JSON: NaN is not JSON"),
        (b"", "the answer is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_bodies_that_are_not_json(serve: Callable[[Handler], ScriptedServer], body: bytes, problem: str) -> None:
    error, _ = get(serve(lambda conn, req: conn.sendall(http_answer(body))))
    assert (error.reason, error.problem) == ("not_json", problem)


@pytest.mark.parametrize("depth", [100_000, 129, 500])
def test_json_nested_too_deep_is_a_clean_error(serve: Callable[[Handler], ScriptedServer], depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    error, elapsed = get(serve(lambda conn, req: conn.sendall(http_answer(body))))
    assert (error.reason, error.problem) == ("too_deep", "the JSON nests deeper than 128 levels")
    assert elapsed < DEADLINE


def test_json_within_the_depth_limit_is_returned(serve: Callable[[Handler], ScriptedServer]) -> None:
    nested: Any = "leaf"
    for _ in range(128):
        nested = {"k": nested}
    server = serve(json_answer(nested))
    answer = RestClient(server.url, TOKEN, limits=RestLimits(timeout=DEADLINE)).get("/x")
    assert answer.value == nested
    with pytest.raises(RestError, match="nests deeper than 127 levels"):
        RestClient(server.url, TOKEN, limits=RestLimits(timeout=DEADLINE, max_depth=127)).get("/x")


def test_the_request_carries_the_token_and_the_query(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(json_answer([]))
    client = RestClient(server.url + "/base/", TOKEN, limits=RestLimits(timeout=DEADLINE))
    assert client.get("/api/v1/x", [("a", "1"), ("a", "2:3")]).value == []
    [request] = server.requests
    assert (request.method, request.path, request.query) == ("GET", "/base/api/v1/x", [("a", "1"), ("a", "2:3")])
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["connection"] == "close"
    assert "secret" not in repr(client)


def test_bad_limits_and_urls_are_refused_before_sending() -> None:
    with pytest.raises(ConfigError, match="REST timeout must be a positive number of seconds"):
        RestLimits(timeout=0)
    with pytest.raises(ConfigError, match="response size cap must be positive"):
        RestLimits(max_response_bytes=0)
    with pytest.raises(ConfigError, match="depth limit must be between 1 and 500"):
        RestLimits(max_depth=10_000)
    with pytest.raises(RestError, match=r"^GET ftp://127\.0\.0\.1/x: not an http:// or https:// URL$") as info:
        RestClient("ftp://127.0.0.1", TOKEN).get("/x")
    assert info.value.reason == "invalid_request"
    with pytest.raises(RestError, match="the token has characters that an HTTP header cannot carry") as info:
        RestClient("http://127.0.0.1:9", "ey.abc\r\nX-Evil: 1").get("/x")
    assert "Evil" not in str(info.value)


# --- the listings check the shape of what they are answered ---


def _runs_answer(**row_changes: Any) -> dict[str, Any]:
    row = {
        "workflowRunExternalId": "3f0e9f6e-0c8e-4a55-9f0b-0d1f1e6a2b11",
        "status": "QUEUED",
        "createdAt": "2026-01-01T00:00:00Z",
        "displayName": "W",
        "input": {},
        "additionalMetadata": {"k": "v"},
    }
    row.update(row_changes)
    return {"pagination": {"current_page": 1, "next_page": 2, "num_pages": 1}, "rows": [row]}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([], "the answer is a list, not an object"),
        ({"pagination": {}}, "rows is missing or null, not a list"),
        ({"rows": {"a": 1}}, "rows is an object, not a list"),
        ({"rows": [1]}, "rows[0] is a number, not an object"),
        (_runs_answer(workflowRunExternalId=None), "rows[0].workflowRunExternalId is missing or null, not a string"),
        (_runs_answer(status=3), "rows[0].status is a number, not a string"),
        (_runs_answer(additionalMetadata=["k:v"]), "rows[0].additionalMetadata is a list, not an object"),
        (_runs_answer(input="{}"), "rows[0].input is a string, not an object"),
        (_runs_answer(workflowName=7), "rows[0].workflowName is a number, not a string"),
        (
            {**_runs_answer(), "pagination": {"current_page": "1"}},
            "pagination.current_page is a string, not an integer",
        ),
        ({**_runs_answer(), "pagination": {"num_pages": True}}, "pagination.num_pages is a boolean, not an integer"),
        ({**_runs_answer(), "pagination": {"next_page": 1.5}}, "pagination.next_page is a number, not an integer"),
        ({**_runs_answer(), "pagination": []}, "the answer.pagination is a list, not an object"),
    ],
)
def test_the_run_listing_refuses_answers_of_the_wrong_shape(
    serve: Callable[[Handler], ScriptedServer], answer: Any, problem: str
) -> None:
    server = serve(json_answer(answer))
    with pytest.raises(ListRunsError) as info:
        list(list_runs(server.url, TENANT, TOKEN, {"k": "v"}, since=HOUR_AGO, timeout=DEADLINE))
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)
    assert str(info.value) == f"GET {server.url}/api/v1/stable/tenants/{TENANT}/workflow-runs: {problem}"


def test_the_run_id_listing_refuses_anything_but_a_list_of_strings(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(json_answer(["a", 5]))
    with pytest.raises(ListRunsError, match=r"external-ids: \[1\] is not a run id \(a string\)$"):
        list_run_ids(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, timeout=DEADLINE)
    server = serve(json_answer({"ids": []}))
    with pytest.raises(ListRunsError, match="the answer is an object, not a list"):
        list_run_ids(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, timeout=DEADLINE)


def test_a_listing_that_fails_on_its_second_page_raises_after_the_first(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    first = json.dumps({**_runs_answer(), "pagination": {"current_page": 1, "num_pages": 2}}).encode()

    def handle(conn: socket.socket, req: Request) -> None:
        conn.sendall(http_answer(first) if dict(req.query)["offset"] == "0" else b"garbage\r\n\r\n")

    server = serve(handle)
    rows = list_runs(server.url, TENANT, TOKEN, {"k": "v"}, since=HOUR_AGO, limit=1, timeout=DEADLINE)
    assert next(rows).run_id == "3f0e9f6e-0c8e-4a55-9f0b-0d1f1e6a2b11"
    with pytest.raises(ListRunsError) as info:
        next(rows)
    assert info.value.reason == "not_http"
    assert [dict(r.query)["offset"] for r in server.requests] == ["0", "1"]


def _workflow(workflow_name: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metadata": {"id": "9d2c1b1e-7f53-4c2a-8d59-6a5b3f0e1c22", "createdAt": "2026-01-01T00:00:00Z"},
        "name": workflow_name,
        "tenantId": TENANT,
    }
    row.update(changes)
    return row


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"rows": None}, "rows is missing or null, not a list"),
        ({"rows": [_workflow("W", metadata={})]}, "rows[0].metadata.id is missing or null, not a string"),
        ({"rows": [_workflow("W", metadata="x")]}, "rows[0].metadata is a string, not an object"),
        ({"rows": [_workflow("W", name=["W"])]}, "rows[0].name is a list, not a string"),
        ({"rows": [_workflow("W", isPaused="no")]}, "rows[0].isPaused is a string, not a boolean"),
        ({"rows": [], "pagination": {"num_pages": "0"}}, "pagination.num_pages is a string, not an integer"),
        ({"rows": [], "embeddedEngine": {"recorder": "yes"}}, "embeddedEngine.recorder is a string, not a boolean"),
        (
            {"rows": [], "embeddedEngine": {"unknownWorkflows": "drop"}},
            "embeddedEngine.recorder is missing or null, not a boolean",
        ),
    ],
)
def test_the_workflow_listing_refuses_answers_of_the_wrong_shape(
    serve: Callable[[Handler], ScriptedServer], answer: Any, problem: str
) -> None:
    server = serve(json_answer(answer))
    with pytest.raises(ListWorkflowsError) as info:
        check_workflows(server.url, TENANT, TOKEN, {"W"}, timeout=DEADLINE)
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)
    assert str(info.value) == f"GET {server.url}/api/v1/tenants/{TENANT}/workflows: {problem}"


def test_the_workflow_listing_request_follows_the_official_client(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(
        json_answer({"rows": [_workflow("bench_BulkParent")], "pagination": {"current_page": 1, "num_pages": 1}})
    )
    rows = list(list_workflows(server.url, TENANT, TOKEN, "bench_Bulk", limit=25, timeout=DEADLINE))
    assert [(r.name, r.workflow_id, r.is_paused) for r in rows] == [
        ("bench_BulkParent", "9d2c1b1e-7f53-4c2a-8d59-6a5b3f0e1c22", None)
    ]
    [request] = server.requests
    assert request.path == f"/api/v1/tenants/{TENANT}/workflows"
    assert request.query == [("offset", "0"), ("limit", "25"), ("name", "bench_Bulk")]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_hatchet_that_lists_no_workflow_at_all(serve: Callable[[Handler], ScriptedServer]) -> None:
    """What the real engine answers for a tenant where no worker registered anything: no embeddedEngine flag."""
    server = serve(json_answer({"rows": [], "pagination": {"current_page": 1, "next_page": 1, "num_pages": 0}}))
    check = check_workflows(server.url, TENANT, TOKEN, {"bench_BulkParent", "bench_Other"}, timeout=DEADLINE)
    assert (check.found, check.missing) == (frozenset(), {"bench_BulkParent", "bench_Other"})
    assert (check.recorder, check.listed_none, check.embedded, check.ok) == (False, True, False, False)
    assert check.describe() == "the engine lists no workflows at all; not found: bench_BulkParent, bench_Other"
    # one filtered search per name, then one unfiltered request to tell "none at all" from "these are unknown"
    assert [dict(r.query).get("name") for r in server.requests] == ["bench_BulkParent", "bench_Other", None]


def test_a_search_term_never_carries_like_escapes_or_wildcards(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(json_answer({"rows": [_workflow("a\\b%cdef")], "pagination": {"current_page": 1, "num_pages": 1}}))
    check = check_workflows(server.url, TENANT, TOKEN, {"a\\b%cdef"}, timeout=DEADLINE)
    assert check.found == {"a\\b%cdef"}
    assert dict(server.requests[0].query)["name"] == "cdef"
