"""The engine's REST API, the subset of Hatchet's that finds runs already triggered and the workflows it knows:

`GET /api/v1/stable/tenants/{tenant}/workflow-runs` -> `{pagination, rows}` (rows shaped like V1TaskSummary),
`GET /api/v1/stable/tenants/{tenant}/workflow-runs/external-ids` -> `[run id, ...]` and
`GET /api/v1/tenants/{tenant}/workflows?name=&limit=&offset=` -> `{rows, pagination, embeddedEngine}` (rows shaped
like Workflow; `embeddedEngine: {recorder, unknownWorkflows}` is this engine's own addition: `recorder` is true
while it knows no workflow and accepts every name), with Bearer authentication; the task operations
(rest_tasks.py): `GET .../task-metrics`, `POST .../tasks/cancel`, `POST .../tasks/replay`; and crons and scheduled
runs (rest_triggers.py): `.../workflows/crons[/{id}]`, `.../workflows/{workflow}/crons`, `.../workflows/scheduled
[/{id}|/bulk-delete]`, `.../workflows/{workflow}/scheduled`; and the events pushed (rest_events.py):
`GET /api/v1/stable/tenants/{tenant}/events`.

Every request: an unknown path is 404, a known path with the other method 405, then the token (401) and the tenant
(403) are checked before anything else is read; then 400 for a bad request, 503 while the engine stops.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import socketserver
import ssl
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from hatchet_client.engine.dispatch import results
from hatchet_client.engine.dispatch.scheduler import Scheduler
from hatchet_client.engine.errors import EngineStopping, TokenError
from hatchet_client.engine.rest_events import EventList
from hatchet_client.engine.rest_params import BadRequest, HttpError, dumps, errors, last, parse_int, parse_time
from hatchet_client.engine.rest_tasks import TaskOps, body_length
from hatchet_client.engine.rest_triggers import TriggerOps
from hatchet_client.engine.service import UnknownWorkflows
from hatchet_client.engine.store import KnownWorkflow, LikePatternError, RawRun, RunFilter, RunStore, workflow_id
from hatchet_client.engine.tokens import TokenVerifier
from hatchet_client.engine.validate import RequestError

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
SOCKET_TIMEOUT_SECONDS = 60.0
_ROUTE = re.compile(r"^/api/v1/stable/tenants/(?P<tenant>[^/]+)/workflow-runs(?P<ids>/external-ids)?/?$")
_WORKFLOWS_ROUTE = re.compile(r"^/api/v1/tenants/(?P<tenant>[^/]+)/workflows/?$")
_METRICS_ROUTE = re.compile(r"^/api/v1/stable/tenants/(?P<tenant>[^/]+)/task-metrics/?$")
_TASK_OPS_ROUTE = re.compile(r"^/api/v1/stable/tenants/(?P<tenant>[^/]+)/tasks/(?P<op>cancel|replay)/?$")
_W = r"^/api/v1/tenants/(?P<tenant>[^/]+)/workflows"
# (kind, path, methods): the first route whose path matches and that allows the method takes the request.
_ROUTES: tuple[tuple[str, re.Pattern[str], frozenset[str]], ...] = (
    ("runs", _ROUTE, frozenset({"GET"})),
    ("workflows", _WORKFLOWS_ROUTE, frozenset({"GET"})),
    ("metrics", _METRICS_ROUTE, frozenset({"GET"})),
    ("task-ops", _TASK_OPS_ROUTE, frozenset({"POST"})),
    ("events", re.compile(r"^/api/v1/stable/tenants/(?P<tenant>[^/]+)/events/?$"), frozenset({"GET"})),
    ("crons", re.compile(_W + r"/crons/?$"), frozenset({"GET"})),
    ("cron", re.compile(_W + r"/crons/(?P<id>[^/]+)/?$"), frozenset({"GET", "DELETE", "PATCH"})),
    ("workflow-crons", re.compile(_W + r"/(?P<workflow>[^/]+)/crons/?$"), frozenset({"POST"})),
    ("schedules", re.compile(_W + r"/scheduled/?$"), frozenset({"GET"})),
    ("bulk-delete", re.compile(_W + r"/scheduled/bulk-delete/?$"), frozenset({"POST"})),
    ("schedule", re.compile(_W + r"/scheduled/(?P<id>[^/]+)/?$"), frozenset({"GET", "DELETE", "PATCH"})),
    ("workflow-schedules", re.compile(_W + r"/(?P<workflow>[^/]+)/scheduled/?$"), frozenset({"POST"})),
)
_WITH_BODY = frozenset({"POST", "PATCH"})
_STATUSES = {"QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED"}
Answer = tuple[int, str]


class RestApi:
    """Request handling, independent of the HTTP server: (path+query, authorization) -> (status, JSON body)."""

    def __init__(
        self,
        store: RunStore,
        verifier: TokenVerifier,
        tenant_id: str,
        unknown_workflows: UnknownWorkflows = "drop",
        scheduler: Scheduler | None = None,
    ) -> None:
        self._store = store
        self._verifier = verifier
        self._tenant_id = tenant_id
        self._unknown_workflows = unknown_workflows
        self._tasks = None if scheduler is None else TaskOps(store, scheduler, tenant_id)
        self._triggers = None if scheduler is None else TriggerOps(store, scheduler, tenant_id)
        self._events = EventList(store, tenant_id)

    def _admit(
        self, method: str, path: str, authorization: str | None
    ) -> tuple[tuple[str, re.Match[str]] | None, Answer | None]:
        """The route a request takes, or the answer that refuses it (404, 405, 401, 403), in that order."""
        matched = [(kind, m, methods) for kind, route, methods in _ROUTES if (m := route.match(path)) is not None]
        chosen = next(((kind, m) for kind, m, methods in matched if method in methods), None)
        if chosen is None:
            if matched:
                return None, (405, errors(f"{method} is not allowed on {path}"))
            return None, (404, errors(f"no such endpoint: {method} {path}"))
        try:
            self._verifier.verify_header(authorization)
        except TokenError as exc:
            return None, (401, errors(str(exc)))
        tenant = chosen[1]["tenant"]
        if tenant != self._tenant_id:
            return None, (403, errors(f"the token does not grant access to tenant {tenant}"))
        return chosen, None

    def handle(self, method: str, target: str, authorization: str | None, read_body: Callable[[], bytes]) -> Answer:
        """(HTTP status, JSON body text; empty for 204) for a request of `target` (path and query); `read_body`
        reads the request's body (bounded), only once the request is admitted."""
        url = urlsplit(target)
        chosen, refused = self._admit(method, url.path, authorization)
        if refused is not None:
            return refused
        assert chosen is not None
        kind, route = chosen
        params = parse_qs(url.query, keep_blank_values=True)
        try:
            if kind == "workflows":
                return 200, self._workflows(params)
            if kind == "metrics":
                return 200, self._task_ops().metrics(params)
            if kind == "task-ops":
                return 200, self._task_ops().apply(route["op"], read_body())
            if kind == "events":
                return 200, self._events.page(params)
            if kind != "runs":
                body = read_body if method in _WITH_BODY else _no_body
                return self._trigger_ops().handle(kind, method, route.groupdict(), params, body)
            if "triggering_event_external_id" in params:
                raise BadRequest(
                    "triggering_event_external_id is not implemented: filter on the metadata pair"
                    " hatchet__event_id:<event id> (every run an event starts carries it)"
                )
            flt, empty = self._filter(params)
            if route["ids"]:
                return 200, dumps([] if empty else self._store.run_ids(flt))
            return 200, self._list(flt, empty, params)
        except HttpError as exc:
            return exc.status, errors(str(exc))
        except (BadRequest, RequestError) as exc:
            return 400, errors(str(exc))
        except EngineStopping as exc:
            return 503, errors(str(exc))

    def get(self, target: str, authorization: str | None) -> Answer:
        return self.handle("GET", target, authorization, _no_body)

    def post(self, target: str, authorization: str | None, read_body: Callable[[], bytes]) -> Answer:
        return self.handle("POST", target, authorization, read_body)

    def _trigger_ops(self) -> TriggerOps:
        if self._triggers is None:
            raise HttpError(503, "this engine serves no crons or scheduled runs (it runs without a scheduler)")
        return self._triggers

    def _task_ops(self) -> TaskOps:
        if self._tasks is None:
            raise HttpError(503, "this engine serves no task operations (it runs without a scheduler)")
        return self._tasks

    def _filter(self, params: dict[str, list[str]]) -> tuple[RunFilter, bool]:
        """The filter, and whether the result is known to be empty (e.g. statuses without QUEUED)."""
        pairs: list[tuple[str, str]] = []
        for item in params.get("additional_metadata", []):
            key, sep, value = item.partition(":")
            if not sep or not key:
                raise BadRequest(f"additional_metadata {item!r} is not key:value")
            pairs.append((key, value))
        operator_text = (last(params, "additional_metadata_operator") or "OR").upper()
        if operator_text not in ("AND", "OR"):
            raise BadRequest("additional_metadata_operator must be AND or OR")
        operator: Literal["AND", "OR"] = "AND" if operator_text == "AND" else "OR"
        since = last(params, "since")
        until = last(params, "until")
        empty = False
        statuses = [s for s in params.get("statuses", []) if s]
        unknown = set(statuses) - _STATUSES
        if unknown:
            raise BadRequest(f"unknown statuses: {', '.join(sorted(unknown))}")
        worker = last(params, "worker_id") or None
        if worker is not None:
            try:
                worker = str(uuid.UUID(worker))
            except ValueError:
                raise BadRequest("worker_id must be a UUID") from None
        names: list[str] | None = None
        wanted_ids = [w for w in params.get("workflow_ids", []) if w]
        if wanted_ids:
            try:
                wanted = {str(uuid.UUID(w)) for w in wanted_ids}
            except ValueError:
                raise BadRequest("workflow_ids must be UUIDs") from None
            names = [n for n in self._store.workflow_names() if workflow_id(self._tenant_id, n) in wanted]
            empty = empty or not names
        flt = RunFilter(
            workflow_names=names,
            metadata=tuple(pairs),
            operator=operator,
            since=None if since is None else parse_time("since", since),
            until=None if until is None else parse_time("until", until),
            statuses=statuses or None,
            worker_id=worker,
        )
        return flt, empty

    def _list(self, flt: RunFilter, empty: bool, params: dict[str, list[str]]) -> str:
        limit_text = last(params, "limit")
        offset_text = last(params, "offset")
        limit = DEFAULT_LIMIT if not limit_text else parse_int("limit", limit_text, 1, MAX_LIMIT)
        offset = 0 if not offset_text else parse_int("offset", offset_text, 0, 2**62)
        payloads = (last(params, "include_payloads") or "true").lower() != "false"
        total, runs = (0, []) if empty else self._store.page(flt, limit, offset)
        done = [run.seq for run in runs if run.status == "COMPLETED"]
        outputs = self._store.read(lambda conn: results.outputs(conn, done)) if payloads and done else {}
        current = offset // limit + 1
        # As Hatchet computes it: next_page is always current_page + 1; num_pages tells when to stop.
        pagination = {"current_page": current, "next_page": current + 1, "num_pages": math.ceil(total / limit)}
        rows = ",".join(self._row(run, payloads, outputs.get(run.seq, {})) for run in runs)
        return f'{{"pagination":{dumps(pagination)},"rows":[{rows}]}}'

    def _workflows(self, params: dict[str, list[str]]) -> str:
        """The workflow listing, paged as Hatchet pages it: current_page = 1 + ceil(offset / limit), next_page =
        current_page + 1 except on the last page, num_pages = ceil(matches / limit)."""
        limit_text = last(params, "limit")
        offset_text = last(params, "offset")
        limit = DEFAULT_LIMIT if not limit_text else parse_int("limit", limit_text, 1, MAX_LIMIT)
        offset = 0 if not offset_text else parse_int("offset", offset_text, 0, 2**62)
        try:
            total, rows = self._store.list_workflows(last(params, "name") or "", limit, offset)
        except LikePatternError as exc:
            raise BadRequest(f"name: {exc}") from None
        pages = math.ceil(total / limit)
        current = 1 + math.ceil(offset / limit)
        body = {
            "rows": [self._workflow(row) for row in rows],
            "pagination": {
                "current_page": current,
                "next_page": current if current == pages else current + 1,
                "num_pages": pages,
            },
            "embeddedEngine": {
                "recorder": not self._store.known_workflows(),
                "unknownWorkflows": self._unknown_workflows,
            },
        }
        return dumps(body)

    def _workflow(self, row: KnownWorkflow) -> dict[str, Any]:
        """One row, shaped like Hatchet's Workflow (what its official REST client requires, and isPaused)."""
        at = row.registered_at
        return {
            "metadata": {"id": workflow_id(self._tenant_id, row.name), "createdAt": at, "updatedAt": at},
            "name": row.name,
            "tenantId": self._tenant_id,
            "isPaused": False,
        }

    def _row(self, run: RawRun, payloads: bool, output: dict[str, Any]) -> str:
        """One row (V1TaskSummary's shape); the stored JSON texts are spliced in as received. A run's output is
        its completed tasks' outputs by task name; `duration` is in milliseconds, from start to finish."""
        at = run.received_at
        times: dict[str, Any] = {}
        if run.started_at is not None:
            times["startedAt"] = _rfc3339(run.started_at)
        if run.finished_at is not None:
            times["finishedAt"] = _rfc3339(run.finished_at)
            times["duration"] = round(1000 * (run.finished_at - (run.started_at or run.finished_at)))
        if run.error is not None:
            times["errorMessage"] = run.error
        fields = {
            "metadata": {"id": run.run_id, "createdAt": at, "updatedAt": at},
            "createdAt": at,
            "displayName": run.workflow_name,
            "output": output if payloads else {},
            "numSpawnedChildren": 0,
            "status": run.status,
            **times,
            "taskExternalId": run.run_id,
            "taskId": run.seq,
            "taskInsertedAt": at,
            "tenantId": self._tenant_id,
            "type": "DAG",
            "workflowId": workflow_id(self._tenant_id, run.workflow_name),
            "workflowName": run.workflow_name,
            "workflowRunExternalId": run.run_id,
            "attempt": run.retry_count + 1,
            "retryCount": run.retry_count,
            "isEvicted": False,
        }
        payload = run.input if payloads else "{}"
        return f'{dumps(fields)[:-1]},"input":{payload},"additionalMetadata":{run.additional_metadata}}}'


def _no_body() -> bytes:
    return b""


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers when the engine stops
    timeout = SOCKET_TIMEOUT_SECONDS  # a client that stops sending (or reading) does not hold a thread forever

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        self._answer(
            lambda: self.server.api.handle(method, self.path, self.headers.get("Authorization"), self._read_body)
        )

    def _read_body(self) -> bytes:
        length = body_length(self.headers)
        data = self.rfile.read(length)
        if len(data) != length:
            raise HttpError(400, f"the body ended after {len(data)} of the {length} bytes announced")
        return data

    def _answer(self, handle: Callable[[], Answer]) -> None:
        try:
            status, body = handle()
        except Exception as exc:
            log.exception("engine REST: unexpected error")
            status, body = 500, errors(f"internal engine error: {type(exc).__name__}")
        data = body.encode()
        self.send_response(status)
        if status != 204:  # No Content: no body, no type
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("engine REST: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # stop() waits for requests in progress

    def __init__(self, address: tuple[str, int], api: RestApi, ssl_context: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api = api
        self.ssl_context = ssl_context
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup of the host
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints these to stderr; a failed TLS handshake or a client hanging up is not ours to print.
        log.debug("engine REST: error serving %s", client_address, exc_info=True)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        if self.ssl_context is not None:  # the TLS handshake happens in the request's thread, not here
            conn = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


class RestServer:
    """The HTTP(S) server thread around RestApi."""

    def __init__(self, host: str, port: int, api: RestApi, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = _Server((host, port), api, ssl_context)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="engine-rest", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
