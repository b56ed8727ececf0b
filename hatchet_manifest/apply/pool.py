"""The parent's side of a parallel apply's worker processes (see parallel.py): `Workers`, the pool started early
and stopped on leaving it, each worker bounded (`sandbox.BoundedProcess`) and read message by message, and
`Merge`, the workers' blocks in block order with the problems they report at the end.
"""

from __future__ import annotations

import marshal
import pickle
from collections.abc import Iterator
from typing import Any

from hatchet_manifest.apply.shards import Job
from hatchet_manifest.errors import Problem
from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.sandbox import BoundedProcess, RenderBounds, WorkerGone
from hatchet_manifest.scrub import scrub


class WorkerError(RuntimeError):
    """A worker process failed (an internal error); `details`: its traceback, scrubbed (shown with --traceback)."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class _Worker:
    def __init__(self, bounds: RenderBounds, access: Access | None = None) -> None:
        """Start the process (bounded: see sandbox.BoundedProcess); it imports what it needs, then waits for its
        job (see `start`)."""
        self.process = BoundedProcess("hatchet_manifest.apply.shard_worker", bounds, access)
        self.proc = self.process.proc

    def start(self, job: Job) -> None:
        self.process.manifests = job.manifests  # a bound's error names the entry of these being rendered
        self.process.send(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        self.process.close_stdin()  # a worker that died at once is reported when its messages are read

    def read(self) -> tuple[Any, ...]:
        """The next message. Raises RenderBoundError when a bound stopped the worker, WorkerError otherwise."""
        try:
            payload = self.process.read_frame()
        except WorkerGone:
            failure = self.process.failure()
            if failure is not None:
                raise failure from None
            code = self.process.returncode()
            raise WorkerError(f"a render worker stopped unexpectedly (exit code {code}; see its error above)") from None
        message: tuple[Any, ...] = marshal.loads(payload)
        if message[0] == "X":  # the worker failed: its error, scrubbed of secrets (see main)
            self.process.returncode()
            raise WorkerError(f"a render worker failed: {scrub(message[1])}", scrub(message[2]))
        return message

    def returncode(self) -> int:
        return self.process.returncode()

    def stop(self) -> None:
        self.process.stop()


class Workers:
    """Render worker processes, started early so that their start (imports: ~0.3 s) overlaps the parent's
    setup (ledger, engine connection, lock); `spool_parallel` gives them their jobs. Leaving the context stops
    any that still run."""

    def __init__(self, n: int, bounds: RenderBounds | None = None, access: Access | None = None) -> None:
        self.procs: list[_Worker] = []
        try:
            for _ in range(n):
                self.procs.append(_Worker(bounds or RenderBounds(), access))
        except BaseException:
            self.stop()
            raise

    def __len__(self) -> int:
        return len(self.procs)

    def stop(self) -> None:
        for w in self.procs:
            w.stop()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Merge:
    """The workers' blocks in block order (each worker's come in order, and the shards are disjoint); collects
    the problems they report at the end: (ordinal, sequence, problem), and their number."""

    def __init__(self, workers: list[_Worker]) -> None:
        self.workers = workers
        self.problems: list[tuple[int, int, Problem]] = []
        self.problem_count = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        heads: list[tuple[Any, ...] | None] = [w.read() for w in self.workers]
        while True:
            best = -1
            for i, head in enumerate(heads):
                if head is None:
                    continue
                if head[0] == "E":
                    self.problem_count += head[1]
                    self.problems.extend((o, len(self.problems), Problem(*p)) for o, *p in head[2])
                    heads[i] = None
                elif best < 0 or head[1] < heads[best][1]:  # type: ignore[index]
                    best = i
            if best < 0:
                return
            block = heads[best]
            assert block is not None
            yield block
            heads[best] = self.workers[best].read()
