"""One REST request and its answer under one total deadline: resolution, connection, TLS, request and body are
all bounded by a watchdog that shuts the socket down at the deadline, and by the response-size cap. One attempt:
whether to make another is rest_retry.py's decision, from what the attempt records (`sent`, `reset`,
`retry_after`)."""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any

from hatchet_client.errors import RestError, RestFailure
from hatchet_client.rest_json import decode_json, short
from hatchet_client.rest_limits import RestLimits
from hatchet_client.rest_retry import parse_retry_after

log = logging.getLogger(__name__)

_ERROR_BODY_BYTES = 16 * 1024  # read from a non-2xx answer, for its error description
_READ_CHUNK = 64 * 1024
_DETAIL_CHARS = 300


def shown_url(url: str) -> str:
    """The URL as error messages show it: scheme, host, port and path; no credentials, no query, no fragment."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path or '/'}"


class Exchange:
    """One request and its answer, under one deadline."""

    def __init__(
        self,
        url: str,
        token: str | None,
        limits: RestLimits,
        ssl_context: ssl.SSLContext | None,
        error: type[RestError],
        *,
        method: str = "GET",
        body: bytes | None = None,
        deadline: float | None = None,
    ) -> None:
        self._limits = limits
        self._token = token
        self._ssl_context = ssl_context
        self._error = error
        self._method = method
        self._body = body
        self._shown = shown_url(url)
        self._deadline = time.monotonic() + limits.timeout if deadline is None else deadline  # time.monotonic()
        self.sent = False  # the request may have reached the server (some of it was written)
        self.reset = False  # the connection was reset (ECONNRESET), not closed or timed out
        self.retry_after: float | None = None  # what a non-2xx answer's Retry-After header asked for
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
        return self._error(self._redact(problem), reason=reason, url=self._shown, method=self._method, status=status)

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
                self.reset = isinstance(exc, ConnectionResetError) and not self._was_cut()
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
        if status == 204:  # No Content (a DELETE, a PATCH): nothing to decode
            return None
        return decode_json(body, self._limits.max_depth, lambda reason, problem: self._fail(reason, problem, status))

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
            conn.putrequest(self._method, self._target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self._host_header)
            conn.putheader("Accept", "application/json")
            conn.putheader("User-Agent", "hatchet-client")
            conn.putheader("Connection", "close")
            if self._token is not None:
                conn.putheader("Authorization", f"Bearer {self._token}")
            if self._body is not None:
                conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(len(self._body)))
            self.sent = True
            conn.endheaders(self._body)
            response = conn.getresponse()
        except http.client.RemoteDisconnected:
            raise (
                self._timeout()
                if self._was_cut()
                else self._fail("unreachable", "the server closed the connection without answering")
            ) from None
        except (http.client.HTTPException, ValueError) as exc:  # BadStatusLine, LineTooLong, bad headers...
            raise (
                self._timeout() if self._was_cut() else self._fail("not_http", f"the answer is not HTTP ({short(exc)})")
            ) from None
        except (TimeoutError, OSError) as exc:
            self.reset = isinstance(exc, ConnectionResetError) and not self._was_cut()
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
            self.retry_after = parse_retry_after(response.getheader("Retry-After"))
            detail = self._error_detail(response)
            phrase = f" {response.reason}" if response.reason else ""
            note = " (redirects are not followed)" if 300 <= status < 400 else ""
            raise self._fail(
                "http_status", f"HTTP {status}{phrase}{note}" + (f": {detail}" if detail else ""), status=status
            )
        if status == 204:
            return b"", status
        cap = self._limits.max_response_bytes
        if length is not None and length > cap:
            raise self._fail("too_large", f"the answer announces {length} bytes, more than the {cap} allowed")
        content_type = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json" and not (
            content_type.startswith("application/") and content_type.endswith("+json")
        ):
            shown = short(content_type) if content_type else "none"
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
                else self._fail("not_http", f"the answer's body is not valid HTTP framing ({short(exc)})")
            ) from None
        except (TimeoutError, OSError) as exc:
            self.reset = isinstance(exc, ConnectionResetError) and not self._was_cut()
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
            raise self._fail("not_http", f"the answer's Content-Length {short(value)!r} is not a number")
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
        return short(" ".join(text.split()), _DETAIL_CHARS)


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
        return short(exc.reason or str(exc))
    if isinstance(exc, OSError) and exc.strerror:
        return short(exc.strerror)
    return short(str(exc) or type(exc).__name__)
