"""Every REST request of the client goes through this module, and every one of them is bounded.

`RestClient(server_url, token).get(path, params)` sends one GET and returns the decoded JSON answer, or raises a
RestError (`hatchet_client.errors`) that names the URL (never the query string, never the token) and says what
went wrong (`reason`). Per request, `RestLimits` bounds:

- the time: one TOTAL deadline covers name resolution, connection, TLS handshake, the request and the whole answer.
  A watchdog shuts the socket down when the deadline passes, so a server that drips one byte a second, or never
  ends its headers, fails at the deadline (a per-read socket timeout would wait forever on it);
- the size: an answer announcing more than `max_response_bytes`, or growing past it, is refused as soon as that is
  known (an endless body never grows memory past the cap);
- the JSON nesting depth (`max_depth`): `[[[[...` a hundred thousand deep is a clean `too_deep` error.

An answer must be HTTP, with a 2xx status (redirects are not followed) and a JSON Content-Type, and be UTF-8 JSON
(NaN and Infinity are not JSON). `Answer` then checks the documented shape field by field (`bad_shape` errors
name the field). Proxy environment variables are not used: the request goes straight to the server_url's host.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import math
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from hatchet_client.errors import ConfigError, RestError, RestFailure

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128
MAX_DEPTH_LIMIT = 500  # below the interpreter's recursion limit, which the JSON parser recurses against
_ERROR_BODY_BYTES = 16 * 1024  # read from a non-2xx answer, for its error description
_READ_CHUNK = 64 * 1024
_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class RestLimits:
    """Bounds of one REST request: `timeout` seconds in total, at most `max_response_bytes` of body, JSON nested
    at most `max_depth` levels (1..500)."""

    timeout: float = DEFAULT_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
            raise ConfigError(f"the REST timeout must be a number of seconds, not {self.timeout!r}")
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise ConfigError(f"the REST timeout must be a positive number of seconds, not {self.timeout!r}")
        if isinstance(self.max_response_bytes, bool) or not isinstance(self.max_response_bytes, int):
            raise ConfigError(f"the REST response size cap must be an integer, not {self.max_response_bytes!r}")
        if self.max_response_bytes <= 0:
            raise ConfigError(f"the REST response size cap must be positive, not {self.max_response_bytes}")
        if isinstance(self.max_depth, bool) or not isinstance(self.max_depth, int):
            raise ConfigError(f"the JSON depth limit must be an integer, not {self.max_depth!r}")
        if not 1 <= self.max_depth <= MAX_DEPTH_LIMIT:
            raise ConfigError(f"the JSON depth limit must be between 1 and {MAX_DEPTH_LIMIT}, not {self.max_depth}")

    def with_timeout(self, timeout: float | None) -> RestLimits:
        """These limits with another timeout (None: unchanged)."""
        return self if timeout is None else replace(self, timeout=timeout)


def shown_url(url: str) -> str:
    """The URL as error messages show it: scheme, host, port and path; no credentials, no query, no fragment."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path or '/'}"


@dataclass(frozen=True, slots=True)
class Answer:
    """A decoded JSON answer, with checks of its shape that raise `error` (reason `bad_shape`) naming the field."""

    value: Any
    url: str
    error: type[RestError]

    def fail(self, problem: str) -> NoReturn:
        raise self.error(problem, reason="bad_shape", url=self.url)

    def as_object(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(f"{where} is {_kind(value)}, not an object")
        return value

    def as_list(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(f"{where} is {_kind(value)}, not a list")
        return value

    def string(self, obj: dict[str, Any], key: str, where: str) -> str:
        value = obj.get(key)
        if not isinstance(value, str):
            self.fail(f"{where}.{key} is {_kind(value)}, not a string")
        return value

    def optional_string(self, obj: dict[str, Any], key: str, where: str) -> str | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            self.fail(f"{where}.{key} is {_kind(value)}, not a string")
        return value

    def optional_int(self, obj: dict[str, Any], key: str, where: str) -> int | None:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(f"{where}.{key} is {_kind(value)}, not an integer")
        return value

    def optional_bool(self, obj: dict[str, Any], key: str, where: str) -> bool | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(f"{where}.{key} is {_kind(value)}, not a boolean")
        return value

    def optional_object(self, obj: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, dict):
            self.fail(f"{where}.{key} is {_kind(value)}, not an object")
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "missing or null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class RestClient:
    """GET requests to one REST API (`server_url`, e.g. `https://hatchet.example.com`) with one token, each
    bounded by `limits`. Thread-safe: it holds no connection (one connection per request)."""

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
        value = _Exchange(url, self._token, self.limits, self._ssl_context, error).run()
        return Answer(value, shown_url(url), error)

    def __repr__(self) -> str:
        return f"RestClient({self._server_url!r}, token=<hidden>, limits={self.limits!r})"


class _Exchange:
    """One request and its answer, under one deadline."""

    def __init__(
        self,
        url: str,
        token: str | None,
        limits: RestLimits,
        ssl_context: ssl.SSLContext | None,
        error: type[RestError],
    ) -> None:
        self._limits = limits
        self._token = token
        self._ssl_context = ssl_context
        self._error = error
        self._shown = shown_url(url)
        self._deadline = time.monotonic() + limits.timeout
        self._lock = threading.Lock()
        self._fired = False
        self._finished = False
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise self._fail("invalid_request", "not an http:// or https:// URL")
        try:
            port = parts.port
        except ValueError:
            raise self._fail("invalid_request", "the URL's port is not a number between 0 and 65535") from None
        self._host = parts.hostname
        self._port = port if port is not None else (443 if self._https else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not self._target.isascii() or not self._host_header.isascii():
            raise self._fail("invalid_request", "the URL is not ASCII (quote its path)")
        if token is not None and not all(" " <= ch <= "~" for ch in token):
            raise self._fail("invalid_request", "the token has characters that an HTTP header cannot carry")

    # --- errors ---

    def _fail(self, reason: RestFailure, problem: str, status: int | None = None) -> RestError:
        return self._error(self._redact(problem), reason=reason, url=self._shown, status=status)

    def _redact(self, text: str) -> str:
        """Server-provided text could echo the request: the token never reaches a message."""
        if self._token and len(self._token) >= 8:
            text = text.replace(self._token, "<token>")
        return text

    def _timeout(self) -> RestError:
        return self._fail("timeout", f"no complete answer within {self._limits.timeout:g}s")

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._timeout()
        return remaining

    def _was_cut(self) -> bool:
        with self._lock:
            return self._fired

    # --- the exchange ---

    def run(self) -> Any:
        infos = self._resolve()
        sock = self._connect(infos)
        try:
            watch = sock.dup()  # survives the TLS wrapping, so the watchdog can shut the connection down any time
        except BaseException:
            sock.close()
            raise
        timer = threading.Timer(max(self._deadline - time.monotonic(), 0.0), self._cut, args=(watch,))
        timer.daemon = True
        conn: http.client.HTTPConnection | None = None
        try:
            timer.start()
            try:
                if self._https:
                    context = self._ssl_context if self._ssl_context is not None else ssl.create_default_context()
                    sock = context.wrap_socket(sock, server_hostname=self._host)
            except (ssl.SSLError, OSError) as exc:
                raise (
                    self._timeout()
                    if self._was_cut()
                    else self._fail("unreachable", f"TLS handshake failed: {_describe(exc)}")
                ) from None
            conn = http.client.HTTPConnection(self._host, self._port)
            conn.sock = sock
            body, status = self._exchange(conn)
        finally:
            with self._lock:
                self._finished = True
            timer.cancel()
            if conn is not None:
                conn.close()
            sock.close()
            watch.close()
        return self._decode(body, status)

    def _cut(self, watch: socket.socket) -> None:
        """The watchdog: at the deadline, shut the connection down; every blocked read or write returns at once."""
        with self._lock:
            if self._finished:
                return
            self._fired = True
        try:
            watch.shutdown(socket.SHUT_RDWR)
        except OSError as exc:  # already closed by the peer: the blocked call has returned anyway
            log.debug("REST watchdog: shutdown of %s failed: %s", self._shown, exc)

    def _resolve(self) -> list[tuple[Any, ...]]:
        if _is_ip(self._host):
            try:
                return socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
            except OSError as exc:
                raise self._fail("unreachable", f"cannot reach the server: {_describe(exc)}") from None
        found: list[tuple[Any, ...]] = []
        failed: list[OSError] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                found.extend(socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM))
            except OSError as exc:
                failed.append(exc)
            finally:
                done.set()

        # In a thread of its own: the system resolver has no deadline of ours (a late answer is dropped).
        threading.Thread(target=lookup, name="hatchet-rest-resolve", daemon=True).start()
        if not done.wait(self._remaining()):
            raise self._fail("timeout", f"cannot resolve {self._host} within {self._limits.timeout:g}s")
        if failed or not found:
            reason = _describe(failed[0]) if failed else "no address"
            raise self._fail("unreachable", f"cannot reach the server: cannot resolve {self._host}: {reason}")
        return found

    def _connect(self, infos: list[tuple[Any, ...]]) -> socket.socket:
        last: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self._remaining())
                sock.connect(address)
            except TimeoutError:
                sock.close()
                raise self._timeout() from None
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise self._fail("unreachable", f"cannot reach the server: {_describe(last) if last else 'no address'}")

    def _exchange(self, conn: http.client.HTTPConnection) -> tuple[bytes, int]:
        """Send the request and read the whole answer: (body, status). Non-2xx statuses raise."""
        sock = conn.sock
        assert sock is not None
        try:
            sock.settimeout(self._remaining())  # a backstop: the watchdog is the bound
            conn.putrequest("GET", self._target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self._host_header)
            conn.putheader("Accept", "application/json")
            conn.putheader("User-Agent", "hatchet-client")
            conn.putheader("Connection", "close")
            if self._token is not None:
                conn.putheader("Authorization", f"Bearer {self._token}")
            conn.endheaders()
            response = conn.getresponse()
        except http.client.RemoteDisconnected:
            raise (
                self._timeout()
                if self._was_cut()
                else self._fail("unreachable", "the server closed the connection without answering")
            ) from None
        except (http.client.HTTPException, ValueError) as exc:  # BadStatusLine, LineTooLong, bad headers...
            raise (
                self._timeout()
                if self._was_cut()
                else self._fail("not_http", f"the answer is not HTTP ({_short(exc)})")
            ) from None
        except (TimeoutError, OSError) as exc:
            raise (
                self._timeout()
                if self._was_cut() or isinstance(exc, TimeoutError)
                else self._fail("unreachable", f"connection lost before an answer: {_describe(exc)}")
            ) from None
        try:
            if self._was_cut():  # the end of the connection also ends headers: cut ones look complete
                raise self._timeout()
            return self._read(response)
        finally:
            response.close()

    def _read(self, response: http.client.HTTPResponse) -> tuple[bytes, int]:
        status = response.status
        length = self._content_length(response)
        if not 200 <= status < 300:
            detail = self._error_detail(response)
            phrase = f" {response.reason}" if response.reason else ""
            note = " (redirects are not followed)" if 300 <= status < 400 else ""
            raise self._fail(
                "http_status", f"HTTP {status}{phrase}{note}" + (f": {detail}" if detail else ""), status=status
            )
        cap = self._limits.max_response_bytes
        if length is not None and length > cap:
            raise self._fail("too_large", f"the answer announces {length} bytes, more than the {cap} allowed")
        content_type = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json" and not (
            content_type.startswith("application/") and content_type.endswith("+json")
        ):
            shown = _short(content_type) if content_type else "none"
            raise self._fail("content_type", f"the answer is not JSON (Content-Type: {shown})", status=status)
        chunks: list[bytes] = []
        total = 0
        try:
            while chunk := response.read(min(_READ_CHUNK, cap + 1 - total)):
                total += len(chunk)
                if total > cap:
                    raise self._fail("too_large", f"the answer is larger than the {cap} bytes allowed")
                chunks.append(chunk)
        except http.client.IncompleteRead as exc:
            if self._was_cut():
                raise self._timeout() from None
            got = total + len(exc.partial)
            expected = f" of the {length} announced" if length is not None else ""
            raise self._fail("truncated", f"the answer ended after {got} bytes{expected}") from None
        except (http.client.HTTPException, ValueError) as exc:  # a malformed chunked encoding
            raise (
                self._timeout()
                if self._was_cut()
                else self._fail("not_http", f"the answer's body is not valid HTTP framing ({_short(exc)})")
            ) from None
        except (TimeoutError, OSError) as exc:
            raise (
                self._timeout()
                if self._was_cut() or isinstance(exc, TimeoutError)
                else self._fail("truncated", f"connection lost after {total} bytes of the answer: {_describe(exc)}")
            ) from None
        with self._lock:
            self._finished = True
            cut = self._fired
        if cut:  # a body delimited by the connection's end looks complete when the watchdog cut it
            raise self._timeout()
        if length is not None and total != length:  # http.client returns a short body without complaint
            raise self._fail("truncated", f"the answer ended after {total} of the {length} bytes announced")
        return b"".join(chunks), status

    def _content_length(self, response: http.client.HTTPResponse) -> int | None:
        values = {v.strip() for v in response.headers.get_all("Content-Length") or []}
        if not values or response.getheader("Transfer-Encoding"):
            return None  # chunked (Content-Length is then ignored, as HTTP says) or delimited by the close
        if len(values) > 1:
            raise self._fail("not_http", "the answer has conflicting Content-Length headers")
        [value] = values
        if not value.isdigit():
            raise self._fail("not_http", f"the answer's Content-Length {_short(value)!r} is not a number")
        return int(value)

    def _error_detail(self, response: http.client.HTTPResponse) -> str:
        """What a non-2xx answer says (Hatchet's `{"errors": [{"description": ...}]}`, or its text), shortened."""
        try:
            raw = response.read(_ERROR_BODY_BYTES)
        except (http.client.HTTPException, OSError, ValueError) as exc:
            log.debug("REST: cannot read the error body of %s: %s", self._shown, exc)
            return ""
        text = raw.decode("utf-8", errors="replace")
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict):
            errors = decoded.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                description = errors[0].get("description")
                if isinstance(description, str):
                    text = description
            elif isinstance(decoded.get("message"), str):
                text = decoded["message"]
        return _short(" ".join(text.split()), _DETAIL_CHARS)

    def _decode(self, body: bytes, status: int) -> Any:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("not_json", "the answer is not UTF-8 text", status=status) from None
        limit = self._limits.max_depth
        # Depth can only exceed the limit when there are more brackets than the limit: most answers skip the walk.
        deep = text.count("[") + text.count("{") > limit
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise self._fail("too_deep", f"the JSON nests deeper than {limit} levels", status=status) from None
        except ValueError as exc:
            raise self._fail("not_json", f"the answer is not JSON: {_short(str(exc))}", status=status) from None
        if deep and _deeper_than(value, limit):
            raise self._fail("too_deep", f"the JSON nests deeper than {limit} levels", status=status)
        return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` has containers nested more than `limit` levels (a top-level list or object is level 1)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ssl.SSLError):
        return _short(exc.reason or str(exc))
    if isinstance(exc, OSError) and exc.strerror:
        return _short(exc.strerror)
    return _short(str(exc) or type(exc).__name__)


def _short(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
