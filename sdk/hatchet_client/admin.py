"""AdminClient: trigger runs (one, a list, or a lazy stream of millions) and read their details.

`run_workflow` and `run_workflows` reproduce the SDK docs' API; `submit` is the lower-level bulk interface that
yields one outcome per chunk (see hatchet_client.pipeline for the chunking, in-flight and failure rules).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

import grpc

from hatchet_client._proto import workflows_pb2
from hatchet_client._proto.v1 import admin_pb2
from hatchet_client.channel import auth_metadata, open_channel, wait_ready
from hatchet_client.chunks import as_ranges, checked_chunks, handed_over
from hatchet_client.config import ClientConfig
from hatchet_client.details import run_details
from hatchet_client.encode import RunEncoder
from hatchet_client.errors import BulkSubmitError, BulkSubmitInterrupted, RpcError, SubmissionStopped
from hatchet_client.pipeline import MAX_BATCH_SIZE, CallFuture, Pacer, Submission, chunked, classify
from hatchet_client.runs import RunDetails, WorkflowRunRef
from hatchet_client.types import Chunk, ChunkOutcome, OptionsLike, RunLike

T = TypeVar("T")

BULK_METHOD = "/WorkflowService/BulkTriggerWorkflow"
TRIGGER_METHOD = "/WorkflowService/TriggerWorkflow"
DETAILS_METHOD = "/v1.AdminService/GetRunDetails"


def _run_ids(data: bytes) -> tuple[str, ...]:
    return tuple(workflows_pb2.BulkTriggerWorkflowResponse.FromString(data).workflow_run_ids)


def _run_id(data: bytes) -> str:
    run_id: str = workflows_pb2.TriggerWorkflowResponse.FromString(data).workflow_run_id
    return run_id


def _identity(data: bytes) -> bytes:
    return data


class AdminClient:
    """Triggers runs over one gRPC channel, opened on first use. Thread-safe."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._metadata = auth_metadata(config)
        self._encoder = self._new_encoder()
        self._connected = False

    # -- the docs' API -----------------------------------------------------------------------------------

    def run_workflow(
        self,
        workflow_name: str,
        input: Mapping[str, Any],
        options: OptionsLike | None = None,
        *,
        timeout: float | None = None,
    ) -> WorkflowRunRef:
        """Trigger one run (TriggerWorkflow). Raises RunValidationError before sending an invalid run, and
        RpcError when the call fails (`applied` False: known not created; None: may have been created).
        Nothing is retried except waiting for a connection before the call."""
        run: dict[str, Any] = {"workflow_name": workflow_name, "input": input}
        if options is not None:
            run["options"] = options
        with self._lock:
            payload = self._encoder.encode_request(run, 0)
        self._ensure_connected()
        call = self._unary(TRIGGER_METHOD, _run_id)
        try:
            run_id: str = call(payload, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as exc:
            error = _rpc_error("TriggerWorkflow", exc)
            if error.code == "UNAVAILABLE":
                self._connected = False
            raise error from None
        return WorkflowRunRef(run_id, self)

    def run_workflows(
        self,
        workflow_runs: Iterable[RunLike],
        *,
        batch_size: int = MAX_BATCH_SIZE,
        concurrency: int = 2,
        timeout: float | None = None,
        runs_per_second: float | Pacer | None = None,
    ) -> list[WorkflowRunRef]:
        """Trigger many runs in bulk; returns their refs in input order.

        A list (any Sequence) is validated whole before anything is sent: one invalid run raises
        RunValidationError and nothing is sent. Any other iterable is consumed lazily, chunk by chunk; an invalid
        run then stops the submission and raises BulkSubmitError (runs already submitted are in it, the
        validation error is its __cause__). An empty input sends nothing and returns [].
        On any failed or unknown chunk, raises BulkSubmitError carrying the run ids of every chunk that
        succeeded (by input index) and the indices that failed, have an unknown fate, or were not sent.
        `runs_per_second`: send at most that many runs a second on average (a Pacer: the same, on its clock)."""
        encoded = self._encoded(enumerate(workflow_runs), self._new_encoder())
        chunks = as_ranges(chunked(encoded, batch_size, self.config.grpc_max_send_message_length))
        total: int | None = None
        if isinstance(workflow_runs, Sequence):  # validated and encoded whole before anything is sent
            total = len(workflow_runs)
            chunks = handed_over(deque(chunks))
        submission = self._submission(chunks, concurrency=concurrency, timeout=timeout, runs_per_second=runs_per_second)
        by_chunk: dict[int, ChunkOutcome[int]] = {}
        stop: BaseException | None = None
        try:
            for outcome in submission:
                by_chunk[outcome.seq] = outcome
        except KeyboardInterrupt as interrupt:
            for outcome in submission.close():
                by_chunk[outcome.seq] = outcome
            try:
                self._refs_or_raise(by_chunk, total, interrupt)
            except BulkSubmitError as partial:
                raise BulkSubmitInterrupted(partial) from interrupt
            raise
        except Exception as exc:  # noqa: BLE001 - SubmissionStopped, an invalid run, or the caller's iterable failing: reported with what was submitted
            stop = exc
        return self._refs_or_raise(by_chunk, total, stop)

    # -- the lower-level bulk interface ------------------------------------------------------------------

    def submit(
        self,
        runs: Iterable[tuple[T, RunLike]],
        *,
        batch_size: int = MAX_BATCH_SIZE,
        concurrency: int = 2,
        before_send: Callable[[Chunk[T]], object] | None = None,
        timeout: float | None = None,
        stop_on_unknown: bool = False,
        runs_per_second: float | Pacer | None = None,
    ) -> Submission[T]:
        """Submit `(tag, run)` pairs lazily; iterate the result for one ChunkOutcome per chunk, in order of
        completion. `before_send(chunk)` runs synchronously before each call starts (record the chunk as
        pending there). `timeout`: per-call deadline in seconds (default: the config's call_timeout, else none);
        an expired deadline is an "unknown" outcome. `stop_on_unknown`: stop sending after the first unknown
        outcome (SubmissionStopped). `runs_per_second`: send at most that many runs a second on average (a
        Pacer: the same, on its own clock). See hatchet_client.pipeline for the rules, Ctrl-C and close()."""
        return self.submit_encoded(
            self._encoded(iter(runs), self._new_encoder()),
            batch_size=batch_size,
            concurrency=concurrency,
            before_send=before_send,
            timeout=timeout,
            stop_on_unknown=stop_on_unknown,
            runs_per_second=runs_per_second,
        )

    def encoder(self) -> RunEncoder:
        """A RunEncoder for this client (namespace, max send size): `encode_item(run, index, tag)` validates a
        run and returns its framed bytes, for `submit_encoded`. Encoding ahead lets a caller validate
        everything before sending anything without keeping the runs in memory (e.g. in a file)."""
        return self._new_encoder()

    def submit_encoded(
        self,
        items: Iterable[tuple[T, bytes]],
        *,
        batch_size: int = MAX_BATCH_SIZE,
        concurrency: int = 2,
        before_send: Callable[[Chunk[T]], object] | None = None,
        timeout: float | None = None,
        stop_on_unknown: bool = False,
        runs_per_second: float | Pacer | None = None,
    ) -> Submission[T]:
        """`submit` for `(tag, framed bytes)` pairs made by `encoder().encode_item`; same rules and outcomes."""
        return self._submission(
            chunked(iter(items), batch_size, self.config.grpc_max_send_message_length),
            concurrency=concurrency,
            before_send=before_send,
            timeout=timeout,
            stop_on_unknown=stop_on_unknown,
            runs_per_second=runs_per_second,
        )

    def submit_chunks(
        self,
        chunks: Iterable[tuple[Sequence[T], bytes]],
        *,
        concurrency: int = 2,
        before_send: Callable[[Chunk[T]], object] | None = None,
        timeout: float | None = None,
        stop_on_unknown: bool = False,
        runs_per_second: float | Pacer | None = None,
    ) -> Submission[T]:
        """`submit_encoded` for items already grouped: each chunk is (tags, the concatenation of their framed
        bytes), at most MAX_BATCH_SIZE items and the max send size (as `chunked` makes them; checked as they
        come: a chunk out of bounds raises ValueError, which stops the submission like a bad run)."""
        return self._submission(
            checked_chunks(iter(chunks), self.config.grpc_max_send_message_length),
            concurrency=concurrency,
            before_send=before_send,
            timeout=timeout,
            stop_on_unknown=stop_on_unknown,
            runs_per_second=runs_per_second,
        )

    # -- runs --------------------------------------------------------------------------------------------

    def get_workflow_run(self, workflow_run_id: str) -> WorkflowRunRef:
        return WorkflowRunRef(workflow_run_id, self)

    def get_run_details(self, run_id: str, timeout: float | None = None) -> RunDetails:
        """One GetRunDetails call (deadline: `timeout`, else the config's call_timeout). Raises RpcError (e.g. code
        NOT_FOUND)."""
        call = self._unary(DETAILS_METHOD, admin_pb2.GetRunDetailsResponse.FromString)
        request = admin_pb2.GetRunDetailsRequest(external_id=run_id).SerializeToString()
        try:
            response = call(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as exc:
            error = _rpc_error("GetRunDetails", exc)
            if error.code == "UNAVAILABLE":
                self._connected = False  # as run_workflow does: wait for the channel before the next call
            raise error from None
        return run_details(run_id, response)

    def call(
        self, what: str, method: str, payload: bytes, deserializer: Callable[[bytes], Any], timeout: float | None
    ) -> Any:
        """One unary call of `method` on this client's channel, with its authentication and the deadline
        `timeout` (else the config's call_timeout): after waiting for a connection (RpcError, nothing sent, when
        there is none within connect_timeout). Nothing is retried; a failure raises RpcError."""
        self._ensure_connected()
        call = self._unary(method, deserializer)
        try:
            return call(payload, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as exc:
            error = _rpc_error(what, exc)
            if error.code == "UNAVAILABLE":
                self._connected = False
            raise error from None

    def close(self, wait: float | None = None) -> bool:
        """Close the channel. With `wait`, give up after that many seconds and return False: gRPC's close waits
        for the calls it is cancelling, and after an interruption that wait can last forever (seen with calls
        cancelled by Ctrl-C under load); the process can still exit, nothing is left to record."""
        with self._lock:
            channel, self._channel, self._connected = self._channel, None, False
        if channel is None:
            return True
        if wait is None:
            channel.close()
            return True
        closer = threading.Thread(target=channel.close, name="hatchet-client-close", daemon=True)
        closer.start()
        closer.join(wait)
        return not closer.is_alive()

    # -- internals ---------------------------------------------------------------------------------------

    def _new_encoder(self) -> RunEncoder:
        return RunEncoder(self.config.namespace, self.config.grpc_max_send_message_length)

    @staticmethod
    def _encoded(pairs: Iterator[tuple[T, RunLike]], encoder: RunEncoder) -> Iterator[tuple[T, bytes]]:
        encode = encoder.encode_item
        for index, (tag, run) in enumerate(pairs):
            yield tag, encode(run, index, tag)

    def _submission(
        self,
        chunks: Iterator[tuple[Sequence[T], bytes]],
        *,
        concurrency: int,
        timeout: float | None,
        before_send: Callable[[Chunk[T]], object] | None = None,
        stop_on_unknown: bool = False,
        runs_per_second: float | Pacer | None = None,
    ) -> Submission[T]:
        return Submission(
            _Transport(self),
            chunks,
            concurrency=concurrency,
            before_send=before_send,
            timeout=self._timeout(timeout),
            connect_timeout=self.config.connect_timeout,
            stop_on_unknown=stop_on_unknown,
            pacer=runs_per_second
            if runs_per_second is None or isinstance(runs_per_second, Pacer)
            else Pacer(runs_per_second),
        )

    def _timeout(self, timeout: float | None) -> float | None:
        return self.config.call_timeout if timeout is None else timeout

    def _get_channel(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                self._channel = open_channel(self.config)
            return self._channel

    def _unary(self, method: str, deserializer: Callable[[bytes], Any]) -> Any:
        return self._get_channel().unary_unary(  # type: ignore[call-arg]
            method, request_serializer=_identity, response_deserializer=deserializer, _registered_method=True
        )

    def _wait_ready(self, timeout: float) -> bool:
        if not wait_ready(self._get_channel(), timeout):
            return False
        self._connected = True
        return True

    def _ensure_connected(self) -> None:
        if not self._connected and not self._wait_ready(self.config.connect_timeout):
            raise RpcError(
                f"cannot connect to {self.config.host_port} within {self.config.connect_timeout:g}s; nothing was sent",
                code="UNAVAILABLE",
                applied=False,
            )

    def _refs_or_raise(
        self, by_chunk: dict[int, ChunkOutcome[int]], total: int | None, stop: BaseException | None
    ) -> list[WorkflowRunRef]:
        outcomes = [by_chunk[seq] for seq in sorted(by_chunk)]
        if stop is None and all(o.state == "submitted" for o in outcomes):
            return [WorkflowRunRef(run_id, self) for o in outcomes for run_id in o.run_ids]
        run_ids: dict[int, str] = {}
        failed: list[int] = []
        unknown: list[int] = []
        errors: list[str] = []
        for o in outcomes:
            if o.state == "submitted":
                run_ids.update(zip(o.tags, o.run_ids, strict=True))
                continue
            (failed if o.state == "failed" else unknown).extend(o.tags)
            errors.append(f"runs {o.chunk.first_index}..{o.chunk.first_index + len(o.chunk) - 1}: {o.code}: {o.error}")
        if stop is not None and not isinstance(stop, (SubmissionStopped, KeyboardInterrupt)):
            errors.append(str(stop))
        covered = sum(len(o.chunk) for o in outcomes)
        not_sent = stop is not None and (total is None or covered < total)
        raise BulkSubmitError(
            run_ids=run_ids,
            failed=failed,
            unknown=unknown,
            not_sent_from=covered if not_sent else None,
            errors=errors,
        ) from stop


class _Transport:
    """The pipeline's view of the channel: bulk calls on pre-serialized bytes, and waiting for READY."""

    def __init__(self, admin: AdminClient) -> None:
        self._admin = admin
        self._call = admin._unary(BULK_METHOD, _run_ids)
        self._metadata = admin._metadata

    def bulk_call(self, payload: bytes, timeout: float | None) -> CallFuture:
        return cast(CallFuture, self._call.future(payload, timeout=timeout, metadata=self._metadata))

    def wait_ready(self, timeout: float) -> bool:
        return self._admin._wait_ready(timeout)


def _rpc_error(what: str, exc: grpc.RpcError) -> RpcError:
    code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    state, _ = classify(code)
    applied: Literal[False] | None = False if state == "failed" else None
    fate = "nothing was applied" if applied is False else "the engine may have applied it"
    return RpcError(f"{what} failed: {code}: {details} ({fate})", code=code, applied=applied)
