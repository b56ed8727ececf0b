"""A real TCP server on 127.0.0.1 whose answers a test scripts byte by byte: valid HTTP, broken HTTP, or not HTTP.

`ScriptedServer(handler)` accepts connections on a free port; for each, it reads the request head (up to the blank
line), records it, and calls `handler(conn, request)` on a thread of its own. Handlers write what they like and
return; the server closes the connection. `stopping` is set when the server closes, so endless handlers end.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass(frozen=True)
class Request:
    """A request head as received: `path`, `query` (pairs in order) and `headers` (lower-case names)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]


Handler = Callable[[socket.socket, Request], None]


class ScriptedServer:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="scripted-http", daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="scripted-http-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                    if len(head) > 65536:
                        return
                request = _parse(head.split(b"\r\n\r\n", 1)[0])
                self.requests.append(request)
                self._handler(conn, request)
            except OSError:
                return  # the client hung up (as it must, at its deadline or its size cap)

    def close(self) -> None:
        self.stopping.set()
        self._accepting.join()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)
            assert not thread.is_alive(), "a scripted handler did not end"

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    url = urlsplit(target)
    return Request(method, url.path, parse_qsl(url.query, keep_blank_values=True), headers)


def http_answer(
    body: bytes,
    *,
    status: str = "200 OK",
    content_type: str | None = "application/json",
    extra: str = "",
    length: int | None = -1,
) -> bytes:
    """A complete HTTP/1.1 answer. `length=-1`: the body's own length; None: no Content-Length header."""
    head = f"HTTP/1.1 {status}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    if length is not None:
        head += f"Content-Length: {len(body) if length == -1 else length}\r\n"
    head += extra + "Connection: close\r\n\r\n"
    return head.encode() + body


def json_answer(value: Any, **kwargs: Any) -> Handler:
    """A handler answering `value` as JSON."""
    data = http_answer(json.dumps(value).encode(), **kwargs)

    def handle(conn: socket.socket, request: Request) -> None:
        conn.sendall(data)

    return handle


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
