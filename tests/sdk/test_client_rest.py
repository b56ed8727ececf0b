"""Every REST request is bounded: a misbehaving server on 127.0.0.1 gets a clean RestError within the deadline.

Each test scripts the server's answer byte by byte (tests/sdk/scripted_http.py) and gives the client a small
deadline or size cap; the test's own duration is bounded by that deadline. The error names the URL path, never
the token.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hatchet_client import (
    RestClient,
    RestError,
    RestLimits,
)
from hatchet_client.errors import ConfigError

from tests.sdk.scripted_http import Handler, Request, ScriptedServer, http_answer, json_answer
from tests.sdk.scripted_http import serve as serve  # the fixture

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.c2VjcmV0LXNpZ25hdHVyZS1ub3QtdG8tbGVhaw"
TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"
DEADLINE = 1.5
SLACK = 1.5  # scheduling, thread start-up: the error comes at the deadline, not after every slow read
HOUR_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


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
