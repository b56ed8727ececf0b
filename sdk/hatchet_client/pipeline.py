"""The bulk submission pipeline: chunks, calls in flight, and one outcome per chunk.

Chunks hold at most `batch_size` (<= 1000) runs and at most the max send size, counting each element's framing
(its tag byte and length varint). Runs are consumed lazily from the input; up to `concurrency` calls are in
flight while the next chunk is encoded. Outcomes are yielded in ORDER OF COMPLETION (use `Chunk.seq` or the
tags to put them back in input order).

What a failed call means, from gRPC semantics and the Hatchet engine's behaviour:

- A status that the server (or the gRPC runtime on either side) produces only when rejecting the request before
  acting on it means nothing was applied: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE,
  UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED, RESOURCE_EXHAUSTED (rate limit, quota, or a message over the
  engine's receive limit: all refused before the handler). The engine validates a bulk call whole before writing.
  -> state "failed". UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED and RESOURCE_EXHAUSTED would fail every
  further call (and a quota must not be hammered), so they are also "fatal": the submission stops sending.
- Any other status may come after the engine committed the runs: UNAVAILABLE (connection lost or server going
  away mid-call, or a handler answering UNAVAILABLE after its commit), DEADLINE_EXCEEDED (the call's deadline,
  whatever the server did), INTERNAL, UNKNOWN, CANCELLED, ABORTED, DATA_LOSS, and ALREADY_EXISTS (an idempotency
  collision: the other runs of the call were created). -> state "unknown". These are NEVER resent, since
  resending is how the official SDK creates duplicate runs; they are reported for reconciliation.
- Hence the one thing retried is reaching the engine: before the first call, and after a call ended in
  UNAVAILABLE, the pipeline waits (gRPC's reconnect backoff, capped at 5 s) for the channel to be READY, up to
  `connect_timeout`. Calls that never start cannot have been applied; if the channel is not READY in time, the
  chunk is "failed" with `sent=False` and the submission stops. (gRPC itself transparently retries a call only
  when it never left the client, which keeps that guarantee.)

Interruption (Ctrl-C) and other exceptions: an exception raised by `before_send`, a KeyboardInterrupt, or an error
inside the pipeline propagates at once; call `close(wait=...)`, which returns every outcome not yet acknowledged:
the chunks already answered with their true state, the chunk being prepared as "failed" (never sent), and calls
still running after `wait` seconds are cancelled and reported "unknown" (the engine may have received them).
An outcome counts as acknowledged when `next()` is called again, so the last outcome returned before an
interruption can come back from `close()`: record outcomes idempotently (by `seq`).
An exception raised by the input iterable (e.g. a RunValidationError) stops sending; the outcomes of the calls in
flight are yielded first, then the exception is raised. A fatal failure does the same with SubmissionStopped.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any, Generic, Literal, Protocol, TypeVar

import grpc

from hatchet_client.errors import SubmissionStopped
from hatchet_client.types import Chunk, ChunkOutcome

T = TypeVar("T")

MAX_BATCH_SIZE = 1000
NOT_APPLIED = frozenset(
    {
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "UNIMPLEMENTED",
        "RESOURCE_EXHAUSTED",
    }
)
FATAL = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "UNIMPLEMENTED", "RESOURCE_EXHAUSTED"})
_POLL_SECONDS = 0.25  # a blocked wait wakes this often (it stays interruptible either way)


class CallFuture(Protocol):
    """What the pipeline needs of a grpc future (grpc's _MultiThreadedRendezvous satisfies it)."""

    def done(self) -> bool: ...
    def cancel(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def result(self, timeout: float | None = None) -> Any: ...
    def exception(self, timeout: float | None = None) -> BaseException | None: ...
    def add_done_callback(self, fn: Callable[[Any], object]) -> None: ...


class Transport(Protocol):
    def bulk_call(self, payload: bytes, timeout: float | None) -> CallFuture:
        """Start a BulkTriggerWorkflow call on pre-serialized bytes; the result is a tuple of run ids."""
        ...

    def wait_ready(self, timeout: float) -> bool:
        """Block until the channel is READY (True) or `timeout` passes (False)."""
        ...


def classify(code: str) -> tuple[Literal["failed", "unknown"], bool]:
    """(state, fatal) of a call that ended with status `code`; see the module docstring."""
    if code in NOT_APPLIED:
        return "failed", code in FATAL
    return "unknown", False


def outcome_of(chunk: Chunk[T], future: CallFuture) -> ChunkOutcome[T]:
    """The outcome of a finished (or cancelled) call."""
    if future.cancelled():
        return ChunkOutcome(chunk, "unknown", code="CANCELLED", error="call cancelled while in flight")
    exc = future.exception()
    if exc is None:
        run_ids: tuple[str, ...] = future.result()
        if len(run_ids) != len(chunk):
            return ChunkOutcome(
                chunk, "unknown", code="OK", error=f"engine answered {len(run_ids)} run ids for {len(chunk)} runs"
            )
        return ChunkOutcome(chunk, "submitted", run_ids=run_ids)
    if isinstance(exc, grpc.Call):
        code = exc.code().name
        state, fatal = classify(code)
        return ChunkOutcome(chunk, state, code=code, error=exc.details() or code, fatal=fatal)
    return ChunkOutcome(chunk, "unknown", code=None, error=f"{type(exc).__name__}: {exc}")


def chunked(items: Iterable[tuple[T, bytes]], batch_size: int, max_send: int) -> Iterator[tuple[list[T], bytes]]:
    """Group framed items into (tags, request bytes) of at most `batch_size` items and `max_send` bytes.

    Each item is already framed (tag byte + length varint + message), so the byte count includes the framing.
    A chunk is yielded as soon as it is full, without reading the next item. A bad batch_size raises at once."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be in 1..{MAX_BATCH_SIZE}, not {batch_size}")
    return _chunks(items, batch_size, max_send)


def _chunks(items: Iterable[tuple[T, bytes]], batch_size: int, max_send: int) -> Iterator[tuple[list[T], bytes]]:
    tags: list[T] = []
    parts: list[bytes] = []
    size = 0
    for tag, item in items:
        if parts and size + len(item) > max_send:
            yield tags, b"".join(parts)
            tags, parts, size = [], [], 0
        tags.append(tag)
        parts.append(item)
        size += len(item)
        if len(parts) >= batch_size:
            yield tags, b"".join(parts)
            tags, parts, size = [], [], 0
    if parts:
        yield tags, b"".join(parts)


class Pacer:
    """Spaces calls so that runs go out at most `rate` per second on average: the first chunk at once, each next
    one when the runs sent so far are due. Time lost to a slow engine is not made up later in a burst."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"the rate must be above 0 runs per second, not {rate}")
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._due: float | None = None  # when the next call may start

    def pause(self) -> float:
        """Seconds to wait before the next call may start (0: now)."""
        return 0.0 if self._due is None else max(0.0, self._due - self.clock())

    def sent(self, runs: int) -> None:
        now = self.clock()
        self._due = max(self._due if self._due is not None else now, now) + runs / self.rate


class Submission(Iterator[ChunkOutcome[T]], Generic[T]):
    """Iterator over chunk outcomes; see the module docstring. Made by `AdminClient.submit`."""

    def __init__(
        self,
        transport: Transport,
        chunks: Iterator[tuple[Sequence[T], bytes]],
        *,
        concurrency: int = 2,
        before_send: Callable[[Chunk[T]], object] | None = None,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
        stop_on_unknown: bool = False,
        pacer: Pacer | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._transport = transport
        self._chunks = chunks
        self._concurrency = concurrency
        self._before_send = before_send
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._stop_on_unknown = stop_on_unknown
        self._pacer = pacer

        self._done_q: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._inflight: dict[int, tuple[Chunk[T], CallFuture]] = {}
        self._local: deque[ChunkOutcome[T]] = deque()  # outcomes known without a call (never sent)
        self._unacked: ChunkOutcome[T] | None = None
        self._sending: tuple[Chunk[T], Literal["preparing", "calling"]] | None = None
        self._next: tuple[Chunk[T], bytes] | None = None  # built, not yet sent
        self._seq = 0
        self._index = 0  # input position of the next run to put in a chunk
        self._need_ready = True
        self._input_done = False
        self._stopping = False
        self._stop_error: BaseException | None = None
        self._closed = False
        self.sent_runs = 0
        """How many runs went into calls that were started (always a prefix of the input)."""

    # -- iteration ---------------------------------------------------------------------------------------

    def __iter__(self) -> Submission[T]:
        return self

    def __next__(self) -> ChunkOutcome[T]:
        self._unacked = None  # the caller came back: the previous outcome is acknowledged
        while not self._closed:
            if self._local:
                return self._deliver(self._local[0])
            outcome = self._take_completed(block=False)
            if outcome is not None:
                return self._deliver(outcome)
            if not self._stopping and not self._input_done and self._next is None:
                self._next = self._build()
            if self._next is not None and not self._stopping and len(self._inflight) < self._concurrency:
                pause = self._pacer.pause() if self._pacer is not None else 0.0
                if pause <= 0:
                    self._send(*self._next)
                    continue
                assert self._pacer is not None
                if self._inflight:  # not due yet: take what completes meanwhile
                    outcome = self._take_completed(block=True, timeout=min(pause, _POLL_SECONDS))
                    if outcome is not None:
                        return self._deliver(outcome)
                else:
                    self._pacer.sleep(min(pause, _POLL_SECONDS))
                continue
            if self._inflight:
                outcome = self._take_completed(block=True)
                if outcome is not None:
                    return self._deliver(outcome)
                continue
            self._closed = True
            if self._stop_error is not None:
                raise self._stop_error
        raise StopIteration

    @property
    def starting_call(self) -> bool:
        """A bulk call is being started: the chunk is handed to gRPC but the call is not in flight yet. An
        interruption at that moment leaves the chunk's fate unknown; a signal handler can let it pass first."""
        sending = self._sending
        return sending is not None and sending[1] == "calling"

    def close(self, wait: float = 0.0) -> list[ChunkOutcome[T]]:
        """Stop sending and return every outcome not yet acknowledged (see the module docstring).

        Waits up to `wait` seconds in total for calls in flight, then cancels the rest ("unknown")."""
        self._closed = self._stopping = True
        out: list[ChunkOutcome[T]] = []
        seen: set[int] = set()
        if self._unacked is not None:
            out.append(self._unacked)
            seen.add(self._unacked.seq)
            self._unacked = None
        while self._local:
            outcome = self._local.popleft()
            if outcome.seq not in seen:
                out.append(outcome)
                seen.add(outcome.seq)
        if self._sending is not None:
            chunk, phase = self._sending
            if chunk.seq not in seen:
                if phase == "preparing":
                    out.append(ChunkOutcome(chunk, "failed", error="not sent: submission closed", sent=False))
                else:
                    out.append(ChunkOutcome(chunk, "unknown", error="interrupted while the call was being started"))
                seen.add(chunk.seq)
            self._sending = None
        deadline = time.monotonic() + wait
        for seq in sorted(self._inflight):
            chunk, future = self._inflight[seq]
            if seq in seen:
                continue
            remaining = deadline - time.monotonic()
            if not future.done() and remaining > 0:
                with contextlib.suppress(grpc.FutureTimeoutError, grpc.FutureCancelledError, CancelledError):
                    future.exception(timeout=remaining)  # returns when done; still running: cancelled below
            if not future.done():
                future.cancel()
            out.append(outcome_of(chunk, future))
            seen.add(seq)
        self._inflight.clear()
        return out

    # -- internals ---------------------------------------------------------------------------------------

    def _deliver(self, outcome: ChunkOutcome[T]) -> ChunkOutcome[T]:
        # Store first, then forget: an interruption between the two leaves it where close() finds it.
        self._unacked = outcome
        if self._local and self._local[0] is outcome:
            self._local.popleft()
        self._inflight.pop(outcome.seq, None)
        stops = outcome.fatal or (self._stop_on_unknown and outcome.state == "unknown")
        if stops and not self._stopping:
            self._stopping = True
            self._stop_error = SubmissionStopped(outcome)
        if outcome.code in ("UNAVAILABLE", None) and outcome.state != "submitted":
            self._need_ready = True
        return outcome

    def _take_completed(self, *, block: bool, timeout: float = _POLL_SECONDS) -> ChunkOutcome[T] | None:
        try:
            seq = self._done_q.get(timeout=timeout) if block else self._done_q.get_nowait()
        except queue.Empty:
            return None
        entry = self._inflight.get(seq)
        if entry is None:  # already reported by close()
            return None
        return outcome_of(*entry)

    def _build(self) -> tuple[Chunk[T], bytes] | None:
        try:
            tags, payload = next(self._chunks)
        except StopIteration:
            self._input_done = True
            return None
        except Exception as exc:  # noqa: BLE001 - the caller's iterable or the encoder failed: stop, drain, re-raise
            self._input_done = self._stopping = True
            self._stop_error = exc
            return None
        chunk = Chunk(seq=self._seq, first_index=self._index, tags=tags, size=len(payload))
        self._seq += 1
        self._index += len(tags)
        return chunk, payload

    def _send(self, chunk: Chunk[T], payload: bytes) -> None:
        self._sending = (chunk, "preparing")
        try:
            if self._before_send is not None:
                self._before_send(chunk)
            if self._need_ready:
                if not self._transport.wait_ready(self._connect_timeout):
                    self._next = self._sending = None
                    self._local.append(
                        ChunkOutcome(
                            chunk,
                            "failed",
                            code="UNAVAILABLE",
                            error=f"not sent: no connection to the engine within {self._connect_timeout:g}s",
                            sent=False,
                            fatal=True,
                        )
                    )
                    return
                self._need_ready = False
        except BaseException as exc:
            self._next = self._sending = None
            self._stopping = True
            self._local.append(
                ChunkOutcome(chunk, "failed", error=f"not sent: {type(exc).__name__} before the call", sent=False)
            )
            raise
        self._sending = (chunk, "calling")
        try:
            future = self._transport.bulk_call(payload, self._timeout)
        except Exception as exc:  # noqa: BLE001 - grpc refused to start the call (e.g. channel closed): not sent
            self._next = self._sending = None
            self._stopping = True
            self._local.append(
                ChunkOutcome(chunk, "failed", error=f"not sent: {type(exc).__name__}: {exc}", sent=False, fatal=True)
            )
            return
        self._inflight[chunk.seq] = (chunk, future)
        self._next = self._sending = None
        self.sent_runs += len(chunk)
        if self._pacer is not None:
            self._pacer.sent(len(chunk))
        seq = chunk.seq
        future.add_done_callback(lambda _f: self._done_q.put(seq))
