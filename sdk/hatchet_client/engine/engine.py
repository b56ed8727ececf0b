"""The embedded engine: a local server speaking Hatchet's trigger contract, storing runs in SQLite."""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType

import grpc

from hatchet_client.engine import tokens
from hatchet_client.engine.dispatch.events import Cancel
from hatchet_client.engine.dispatch.scheduler import Scheduler
from hatchet_client.engine.dispatch.service import add_dispatch_servicers
from hatchet_client.engine.errors import EngineError
from hatchet_client.engine.faults import ENV_VAR, Fault, FaultSchedule, faults_from_json
from hatchet_client.engine.rest import RestApi, RestServer
from hatchet_client.engine.schema import check_workflow_name, init_database, register_token, register_workflows
from hatchet_client.engine.service import (
    UNKNOWN_WORKFLOW_MODES,
    AuthInterceptor,
    Ingest,
    UnknownWorkflows,
    add_servicers,
)
from hatchet_client.engine.store import RunStore
from hatchet_client.engine.validate import MAX_BULK_RUNS
from hatchet_client.engine.writer import RunWriter

MAX_RECEIVE_BYTES = 4 * 1024 * 1024  # Hatchet's default: larger messages get RESOURCE_EXHAUSTED
DEFAULT_PORT = 7077
DEFAULT_TOKEN_TTL = timedelta(days=365)

# What the official client does on the wire, which must be accepted: keepalive pings every 10 s even without
# calls in flight (the gRPC default would answer them with GOAWAY too_many_pings), gzip (always accepted).
_GRPC_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
]


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """Serve TLS with this certificate; with `client_ca_file`, require client certificates it signed (mTLS)."""

    cert_file: str | Path
    key_file: str | Path
    client_ca_file: str | Path | None = None

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        try:
            cert = Path(self.cert_file).read_bytes()
            key = Path(self.key_file).read_bytes()
            ca = Path(self.client_ca_file).read_bytes() if self.client_ca_file else None
        except OSError as exc:
            raise EngineError(f"cannot read the engine's TLS files: {exc}") from None
        return cert, key, ca

    def grpc_credentials(self) -> grpc.ServerCredentials:
        cert, key, ca = self._read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
            if self.client_ca_file:
                context.load_verify_locations(str(self.client_ca_file))
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise EngineError(f"cannot load the engine's TLS files: {exc}") from None
        return context


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _broadcast_host(host: str) -> str:
    """The host clients should dial: a wildcard bind address is reachable on loopback."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


def urls(host: str, port: int, rest_port: int, tls: bool = False) -> tuple[str, str]:
    """(grpc_broadcast_address, server_url) for an engine bound on host:port / rest_port."""
    public = _broadcast_host(host)
    return _host_port(public, port), f"{'https' if tls else 'http'}://{_host_port(public, rest_port)}"


MAX_PORT = 65535


def default_rest_port(port: int) -> int:
    """The REST port beside a gRPC port: the next one (a free one for port 0)."""
    if not 0 <= port <= MAX_PORT:
        raise EngineError(f"port {port} is not a TCP port (0..{MAX_PORT})")
    if port == MAX_PORT:
        raise EngineError(f"port {port} leaves no next port for REST: choose --rest-port")
    return 0 if port == 0 else port + 1


def issue_token(
    db_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    rest_port: int | None = None,
    tls: bool = False,
    ttl: timedelta = DEFAULT_TOKEN_TTL,
) -> str:
    """A token for the engine that uses (or will use) this database on host:port; no server needed."""
    path = Path(db_path)
    tenant_id = init_database(path)
    secret = tokens.load_or_create_secret(tokens.secret_path(path))
    return _sign_token(path, tenant_id, secret, host, port, rest_port, tls, ttl)


def _sign_token(
    path: Path,
    tenant_id: str,
    secret: bytes,
    host: str,
    port: int,
    rest_port: int | None,
    tls: bool,
    ttl: timedelta,
) -> str:
    address, server_url = urls(host, port, default_rest_port(port) if rest_port is None else rest_port, tls)
    claims = tokens.new_claims(tenant_id, server_url, address, ttl.total_seconds())
    register_token(path, claims["token_id"], claims["iat"], claims["exp"])
    return tokens.sign(claims, secret)


class Engine:
    """A Hatchet-compatible engine on this machine: gRPC trigger service, REST run and workflow listings, SQLite.

    `port=0` picks a free port; `rest_port=None` means port+1 (a free port when port is 0).

    Workflows: the engine knows the names in `workflows` (recorded in its database, so they stay known when it
    restarts with other ones: known workflows accumulate, as registrations do on Hatchet) and those registered
    later (`register_workflow`, what a PutWorkflow of a worker will do). While it knows none, it is a RECORDER:
    it stores runs of every name, and its workflow listing says `embeddedEngine.recorder: true` (so a client
    checking names can report "names not checked" rather than "every name unknown"). Once it knows some,
    `unknown_workflows` says what happens to a run of another name:

    - `"drop"` (the default, the real Hatchet engine's behaviour with its default settings): the run is not
      stored, without an error; the call still answers a generated run id for it, which no run will ever have;
    - `"refuse"`: the whole call fails with INVALID_ARGUMENT `workflow names not found: ...` and stores nothing
      (what Hatchet answers on its message-queue trigger path).

    Every stored run's metadata gets a `traceparent` (W3C, random ids) unless the caller set one, as on Hatchet.

    Workers: the official SDK's worker registers its workflows (PutWorkflow: a version per distinct definition,
    which also makes the name known), registers itself and listens; the scheduler (dispatch/) runs every stored
    run of a workflow that has a version on the workers that registered its actions, and keeps the outcome. A
    worker without a heartbeat for `worker_timeout` seconds is dead: its tasks are queued again. `clock` is the
    time source of all dispatch timers (tests may pass their own).
    """

    def __init__(
        self,
        db_path: str | Path,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        rest_port: int | None = None,
        tls: ServerTLS | None = None,
        *,
        max_workers: int = 64,
        workflows: Sequence[str] | None = None,
        unknown_workflows: UnknownWorkflows = "drop",
        worker_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not worker_timeout > 0:
            raise EngineError("worker_timeout must be positive")
        self.worker_timeout = worker_timeout
        self._clock = clock
        if unknown_workflows not in UNKNOWN_WORKFLOW_MODES:
            raise EngineError(f"unknown_workflows must be drop or refuse, not {unknown_workflows!r}")
        if isinstance(workflows, str):
            raise EngineError("workflows must be a sequence of names, not one string")
        declared = [check_workflow_name(name) for name in workflows or ()]  # before the database is touched
        self.db_path = Path(db_path)
        self.unknown_workflows: UnknownWorkflows = unknown_workflows
        self.host = host
        self._want_port = port
        if rest_port is not None and not 0 <= rest_port <= MAX_PORT:
            raise EngineError(f"REST port {rest_port} is not a TCP port (0..{MAX_PORT})")
        self._want_rest_port = default_rest_port(port) if rest_port is None else rest_port
        self.tls = tls
        self._max_workers = max_workers
        self.tenant_id: str = init_database(self.db_path)
        if declared:
            register_workflows(self.db_path, declared, "declared")
        self._secret = tokens.load_or_create_secret(tokens.secret_path(self.db_path))
        self._faults = FaultSchedule()
        self._env_faults_armed = False  # HATCHET_ENGINE_FAULTS is armed by the first start only
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._port: int | None = None
        self._rest_port: int | None = None
        self._store: RunStore | None = None
        self._writer: RunWriter | None = None
        self._scheduler: Scheduler | None = None
        self._grpc: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._rest: RestServer | None = None

    # --- lifecycle ---

    def start(self) -> Engine:
        """Start serving (non-blocking). Faults listed in HATCHET_ENGINE_FAULTS are armed by the first start."""
        with self._lock:
            if self._grpc is not None:
                raise EngineError("the engine is already running")
            if not self._env_faults_armed:
                env_faults = os.environ.get(ENV_VAR)
                for fault in faults_from_json(env_faults) if env_faults else []:
                    self._faults.inject(fault)
                self._env_faults_armed = True
            self._stopping.clear()
            try:
                self._start()
            except BaseException:
                self._shutdown(grace=0)
                raise
        return self

    def _start(self) -> None:
        self._store = RunStore(self.db_path)
        verifier = tokens.TokenVerifier(self._secret, self.tenant_id, self._store.token_known)
        self._writer = RunWriter(self.db_path)
        self._writer.start()
        self._scheduler = Scheduler(
            self.db_path,
            self.tenant_id,
            worker_timeout=self.worker_timeout,
            clock=self._clock,
            on_runs=self._writer.notice_runs,
        )
        self._scheduler.start()
        self._executor = futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="engine-grpc")
        server = grpc.server(self._executor, interceptors=[AuthInterceptor(verifier)], options=_GRPC_OPTIONS)
        self._grpc = server
        scheduler = self._scheduler
        ingest = Ingest(
            self._writer, self._faults, self._stopping, self._store, self.unknown_workflows, on_stored=scheduler.wake
        )
        add_servicers(server, ingest, self._store, scheduler)
        add_dispatch_servicers(server, scheduler, self._store, self._stopping)
        target = _host_port(self.host, self._want_port)
        try:
            if self.tls is None:
                self._port = server.add_insecure_port(target)
            else:
                self._port = server.add_secure_port(target, self.tls.grpc_credentials())
        except RuntimeError as exc:
            raise EngineError(f"cannot listen on {target}: {exc}") from None
        if not self._port:  # older grpcio reports a failed bind as port 0
            raise EngineError(f"cannot listen on {target}: address in use or not available")
        rest_port = self._want_rest_port
        try:
            self._rest = RestServer(
                self.host,
                rest_port,
                RestApi(self._store, verifier, self.tenant_id, self.unknown_workflows, scheduler),
                None if self.tls is None else self.tls.ssl_context(),
            )
        except OSError as exc:
            raise EngineError(f"cannot listen on {_host_port(self.host, rest_port)} (REST): {exc}") from None
        self._rest_port = self._rest.port
        server.start()
        self._rest.start()

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving: calls in progress get `grace` seconds, then everything accepted is committed."""
        with self._lock:
            self._shutdown(grace)

    def _shutdown(self, grace: float | None) -> None:
        self._stopping.set()  # ends injected stalls
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        if self._scheduler is not None:
            self._scheduler.close()
            self._scheduler = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses and tokens ---

    @property
    def running(self) -> bool:
        return self._grpc is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise EngineError("the engine has not been started")
        return self._port

    @property
    def rest_port(self) -> int:
        if self._rest_port is None:
            raise EngineError("the engine has not been started")
        return self._rest_port

    @property
    def address(self) -> str:
        """host:port of the gRPC server, as clients dial it (the token's grpc_broadcast_address)."""
        return urls(self.host, self.port, self.rest_port, self.tls is not None)[0]

    @property
    def server_url(self) -> str:
        """Base URL of the REST API (the token's server_url)."""
        return urls(self.host, self.port, self.rest_port, self.tls is not None)[1]

    def token(self, ttl: timedelta = DEFAULT_TOKEN_TTL) -> str:
        """A token for this running engine (its actual ports); its database is set up already."""
        return _sign_token(
            Path(self.db_path),
            self.tenant_id,
            self._secret,
            self.host,
            self.port,
            self.rest_port,
            self.tls is not None,
            ttl,
        )

    # --- workflows ---

    def register_workflow(self, name: str) -> bool:
        """Make a workflow known (running or not); False if it was known already. A running engine applies it
        from its next trigger call. EngineError for an empty name."""
        if self._store is not None:
            return self._store.register_workflow(name)
        return bool(register_workflows(self.db_path, [name], "registered"))

    def known_workflows(self) -> frozenset[str]:
        """The workflow names the engine knows (declared or registered)."""
        if self._store is not None:
            return self._store.known_workflows()
        with RunStore(self.db_path) as store:
            return store.known_workflows()

    @property
    def recorder(self) -> bool:
        """True while the engine knows no workflow: it stores runs of every name, and checks none."""
        return not self.known_workflows()

    # --- runs ---

    def cancel(self, ids: Sequence[str]) -> list[str]:
        """Cancel runs (by run id) or single tasks (by task external id): queued tasks are cancelled, running ones
        get CANCEL_STEP_RUN on their worker. The ids that had something to cancel."""
        if self._scheduler is None:
            raise EngineError("the engine has not been started")
        return list(self._scheduler.call(Cancel(tuple(ids))))

    # --- testing aids ---

    def inject(self, fault: Fault) -> None:
        """Arm a fault for a coming trigger call (see Fault)."""
        self._faults.inject(fault)

    def index_now(self) -> None:
        """Index every stored run now (normally done when the engine is idle); lookups are complete either way."""
        if self._writer is None:
            raise EngineError("the engine has not been started")
        self._writer.index_now()

    @property
    def store(self) -> RunStore:
        """The engine's read side (valid while it runs)."""
        if self._store is None:
            raise EngineError("the engine has not been started")
        return self._store


__all__ = ["MAX_BULK_RUNS", "MAX_RECEIVE_BYTES", "Engine", "ServerTLS", "issue_token"]
