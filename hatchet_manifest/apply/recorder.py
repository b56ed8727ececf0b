"""The ledger's writes during a launch, on threads of their own, so that sending never waits for them (a SQLite
or PostgreSQL write releases the GIL, and the engine works meanwhile):

- `WriteAhead` records each chunk `pending` one chunk ahead of the sending: a chunk is handed to the sender
  only once its record is committed, so the write-ahead rule holds. After a crash, one chunk more than
  without it may be `pending` though never sent; the next apply reconciles it like any other.
- `OutcomeRecorder` records outcomes in the order they arrive. An outcome recorded a little later than it
  arrived changes nothing for crash safety: until then its runs are `pending`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

T = TypeVar("T")

_POLL = 0.05  # seconds; how often a stopping WriteAhead looks whether its thread ended


class OutcomeRecorder(Generic[T]):
    """Calls `record(outcome)` on its own thread for every outcome `put`, in order; errors are kept for the
    sending thread (`check`, `errors`), and the outcomes after an error are still recorded."""

    def __init__(self, record: Callable[[T], None]) -> None:
        self._record = record
        self._queue: queue.SimpleQueue[tuple[T] | None] = queue.SimpleQueue()
        self.errors: list[Exception] = []
        self._thread = threading.Thread(target=self._loop, name="hatchet-manifest-recorder", daemon=True)
        self._thread.start()

    def put(self, outcome: T) -> None:
        self._queue.put((outcome,))

    def check(self) -> None:
        """Raise, on the caller's thread, the first error recording met."""
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        """Record everything put so far, then stop; returns when the last outcome is recorded."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._record(item[0])
            except Exception as exc:  # noqa: BLE001 - handed to the sending thread, which raises or reports it
                self.errors.append(exc)


class _Ready(NamedTuple):
    tags: Any
    payload: bytes


class _Failed(NamedTuple):
    error: BaseException


class WriteAhead:
    """Iterates `chunks` ((tags, payload) pairs), calling `record(seq, tags)` for each on its own thread, one
    chunk ahead of the consumer; yields a chunk only after its record. A record that fails ends the stream
    there: `failed(seq)` gives its error, which the consumer raises instead of sending the chunk. An error
    reading `chunks` is raised by the iteration."""

    def __init__(self, chunks: Iterable[tuple[Any, bytes]], record: Callable[[int, Any], None]) -> None:
        self._chunks = chunks
        self._record = record
        self._queue: queue.Queue[_Ready | _Failed | None] = queue.Queue(maxsize=1)
        self._stopped = threading.Event()
        self._errors: dict[int, BaseException] = {}
        self._thread = threading.Thread(target=self._loop, name="hatchet-manifest-write-ahead", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[tuple[Any, bytes]]:
        while (item := self._queue.get()) is not None:
            if isinstance(item, _Failed):
                raise item.error
            yield item.tags, item.payload

    def failed(self, seq: int) -> BaseException | None:
        """The error of recording chunk `seq`, if it failed (the chunk must then not be sent)."""
        return self._errors.get(seq)

    def stop(self) -> None:
        """Record no more; returns when the thread has ended (chunks it recorded and nobody took are dropped:
        the caller finds them among the ones recorded and never sent)."""
        self._stopped.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL)  # unblocks a thread waiting to hand over a chunk
            except queue.Empty:
                continue

    def _loop(self) -> None:
        try:
            for seq, (tags, payload) in enumerate(self._chunks):
                if self._stopped.is_set():
                    return
                try:
                    self._record(seq, tags)
                except Exception as exc:  # noqa: BLE001 - raised on the sending thread, in place of the chunk
                    self._errors[seq] = exc
                    self._put(_Ready(tags, payload))  # handed over all the same: sending it raises the error
                    break
                self._put(_Ready(tags, payload))
        except Exception as exc:  # noqa: BLE001 - reading the chunks failed: the consumer's iteration raises it
            self._put(_Failed(exc))
            return
        self._put(None)

    def _put(self, item: _Ready | _Failed | None) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue
