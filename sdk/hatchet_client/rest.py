"""Every REST request of the client goes through this module, and every one of them is bounded.

`RestClient(server_url, token).get(path, params)` sends one GET (`post(path, body, idempotent=...)` one POST of a
JSON body, `send(method, path, body, params, idempotent=...)` any method) and returns the decoded JSON answer, or
raises a RestError (`hatchet_client.errors`) that names the URL (never the query string, never the token) and
says what went wrong (`reason`). Per request, `RestLimits` bounds:

- the time: one TOTAL deadline covers name resolution, connection, TLS handshake, the request and the whole answer,
  and every retry (below). A watchdog shuts the socket down when the deadline passes, so a server that drips one
  byte a second, or never ends its headers, fails at the deadline (a per-read socket timeout would wait forever);
- the size: an answer announcing more than `max_response_bytes`, or growing past it, is refused as soon as that is
  known (an endless body never grows memory past the cap);
- the JSON nesting depth (`max_depth`): `[[[[...` a hundred thousand deep is a clean `too_deep` error.

An answer must be HTTP, with a 2xx status (redirects are not followed) and a JSON Content-Type, and be UTF-8 JSON
(NaN and Infinity are not JSON); a 204 No Content has no body (its value is None). `Answer` then checks the
documented shape field by field (`bad_shape` errors name the field). Proxy environment variables are not used: the request goes straight to the server_url's host.

HTTP 429, 502, 503, 504 and connection resets are retried with exponential backoff, honouring `Retry-After`,
within the same deadline (rest_retry.py); a POST that may have had an effect only when its caller says it is
idempotent. The last error is raised, saying how many attempts were made.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from hatchet_client import rest_retry
from hatchet_client.errors import RestError
from hatchet_client.rest_exchange import Exchange, shown_url
from hatchet_client.rest_json import Answer
from hatchet_client.rest_limits import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    MAX_DEPTH_LIMIT,
    RestLimits,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_DEPTH_LIMIT",
    "Answer",
    "RestClient",
    "RestLimits",
    "shown_url",
]


class RestClient:
    """Requests to one REST API (`server_url`, e.g. `https://hatchet.example.com`) with one token, each bounded by
    `limits`. Thread-safe: it holds no connection (one connection per request)."""

    __slots__ = ("_server_url", "_ssl_context", "_token", "limits")

    def __init__(
        self,
        server_url: str,
        token: str | None,
        *,
        limits: RestLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._server_url = server_url.rstrip("/")
        self._token = token
        self._ssl_context = ssl_context
        self.limits = limits if limits is not None else RestLimits()

    def url(self, path: str) -> str:
        """The full URL of an API path (no query), as errors show it."""
        return shown_url(self._server_url + path)

    def get(self, path: str, params: Sequence[tuple[str, str]] = (), *, error: type[RestError] = RestError) -> Answer:
        """GET `server_url + path` with the query `params` (repeated names are repeated pairs); the decoded JSON
        answer. Every failure raises `error` (a RestError subclass)."""
        url = self._server_url + path
        if params:
            url += "?" + urllib.parse.urlencode(list(params))
        return self._request(url, "GET", None, error, idempotent=True)

    def post(self, path: str, body: Any, *, idempotent: bool, error: type[RestError] = RestError) -> Answer:
        """POST the JSON `body` to `server_url + path`; the decoded JSON answer. `idempotent`: sending it twice has
        the effect of sending it once (so a failure after it may have arrived is retried). Failures raise `error`."""
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        return self._request(self._server_url + path, "POST", data, error, idempotent=idempotent)

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Sequence[tuple[str, str]] = (),
        *,
        idempotent: bool,
        error: type[RestError] = RestError,
    ) -> Answer:
        """Any method (GET, POST, PATCH, DELETE) with an optional JSON body; the decoded answer (its value is None
        for a 204 No Content). Failures raise `error`."""
        url = self._server_url + path
        if params:
            url += "?" + urllib.parse.urlencode(list(params))
        data = None if body is None else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        return self._request(url, method, data, error, idempotent=idempotent)

    def _request(
        self, url: str, method: str, body: bytes | None, error: type[RestError], *, idempotent: bool
    ) -> Answer:
        deadline = time.monotonic() + self.limits.timeout
        attempt = 1
        while True:
            exchange = Exchange(
                url, self._token, self.limits, self._ssl_context, error, method=method, body=body, deadline=deadline
            )
            try:
                value = exchange.run()
            except RestError as exc:
                retry = rest_retry.should_retry(exc, sent=exchange.sent, reset=exchange.reset, idempotent=idempotent)
                wait = rest_retry.delay(attempt, exchange.retry_after)
                if not retry or attempt >= rest_retry.MAX_ATTEMPTS or time.monotonic() + wait >= deadline:
                    raise exc if attempt == 1 else _attempts(exc, attempt) from None
                time.sleep(wait)
                attempt += 1
                continue
            return Answer(value, shown_url(url), error, method)

    def __repr__(self) -> str:
        return f"RestClient({self._server_url!r}, token=<hidden>, limits={self.limits!r})"


def _attempts(exc: RestError, attempts: int) -> RestError:
    """The last attempt's error, saying how many were made."""
    return type(exc)(
        f"{exc.problem} (after {attempts} attempts)",
        reason=exc.reason,
        url=exc.url,
        method=exc.method,
        status=exc.status,
    )
