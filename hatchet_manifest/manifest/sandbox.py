"""Renders bounded as a whole: in a worker process limited in memory and time.

The per-operation caps (`caps.py`) stop the operations they name; this stops everything else. The commands that
render (`validate`, `render`, `diff` and its `--base` render, `apply` and its parallel workers) render in a fresh
interpreter (`python -P -m ...`: started like multiprocessing's spawn method, never a fork of a process that may
hold gRPC threads, and never importing from the current directory, which holds the pull request) that limits
itself before it reads its job:

- memory: RLIMIT_AS, the address space of the whole worker (`--render-memory`, default 1 GiB). Python raises
  MemoryError at the allocation that would pass it; the worker exits with EXIT_MEMORY;
- CPU time: RLIMIT_CPU (`--render-timeout`, default 60 s): the kernel stops the worker with SIGXCPU;
- wall-clock time: the parent counts the time it spends waiting for the worker (not the time the worker waits
  for the parent, which may be planning or sending) and kills it past `--render-timeout`.

The worker writes which run entry it is rendering into a small file both processes map (`ProgressCell`, a few
bytes per entry, nothing per run), so that when a bound stops it the parent names the manifest file, line and
entry: `manifests/x.yaml:12: runs[0]: rendering used more than 1 GiB of memory (--render-memory)`, exit code 1.

`BoundedRenderer` has the interface of `Renderer` (what the commands use) and renders in such a worker: the job
(the loaded manifests, values, limits) goes to its stdin pickled, the runs come back on its stdout in frames of
marshalled tuples, identical to what `Renderer` yields in-process, problems and their messages included. The
library's `Renderer` and `render()` stay in-process (a library user runs them under its own bounds); the
per-operation caps hold in both.
"""

from __future__ import annotations

import marshal
import pickle
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from hatchet_manifest.errors import ConfigError, HatchetManifestError, LedgerError, ManifestError, Problem
from hatchet_manifest.manifest.bounded_process import STARTUP_TIMEOUT as STARTUP_TIMEOUT
from hatchet_manifest.manifest.bounded_process import BoundedProcess as BoundedProcess
from hatchet_manifest.manifest.bounded_process import WorkerGone as WorkerGone
from hatchet_manifest.manifest.bounded_process import guarded as guarded
from hatchet_manifest.manifest.bounded_process import out_of_memory as out_of_memory
from hatchet_manifest.manifest.bounded_process import send_frame as send_frame
from hatchet_manifest.manifest.bounded_process import worker_start as worker_start
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.render_bounds import DEFAULT_MEMORY as DEFAULT_MEMORY
from hatchet_manifest.manifest.render_bounds import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from hatchet_manifest.manifest.render_bounds import EXIT_MEMORY as EXIT_MEMORY
from hatchet_manifest.manifest.render_bounds import MEMORY_ENV as MEMORY_ENV
from hatchet_manifest.manifest.render_bounds import MIN_MEMORY as MIN_MEMORY
from hatchet_manifest.manifest.render_bounds import PHASE_DONE as PHASE_DONE
from hatchet_manifest.manifest.render_bounds import PHASE_ENTRY as PHASE_ENTRY
from hatchet_manifest.manifest.render_bounds import PHASE_START as PHASE_START
from hatchet_manifest.manifest.render_bounds import TIMEOUT_ENV as TIMEOUT_ENV
from hatchet_manifest.manifest.render_bounds import ProgressCell as ProgressCell
from hatchet_manifest.manifest.render_bounds import RenderBoundError as RenderBoundError
from hatchet_manifest.manifest.render_bounds import RenderBounds as RenderBounds
from hatchet_manifest.manifest.render_bounds import RenderWorkerError as RenderWorkerError
from hatchet_manifest.manifest.render_bounds import human_seconds as human_seconds
from hatchet_manifest.manifest.render_bounds import human_size as human_size
from hatchet_manifest.manifest.render_bounds import parse_seconds as parse_seconds
from hatchet_manifest.manifest.render_bounds import parse_size as parse_size
from hatchet_manifest.manifest.render_protocol import BATCH as BATCH
from hatchet_manifest.manifest.render_protocol import EntryRef, RenderJob
from hatchet_manifest.manifest.render_protocol import worker_main as worker_main
from hatchet_manifest.manifest.rendered import Limits, RenderedRun
from hatchet_manifest.manifest.rendering import EntryOrigin as EntryOrigin
from hatchet_manifest.manifest.rendering import Rendering as Rendering
from hatchet_manifest.manifest.validate import SchemaRegistry
from hatchet_manifest.manifest.values import Values

WORKER_MODULE = "hatchet_manifest.manifest.render_worker"


def _stop(process: BoundedProcess) -> None:
    process.stop()


_ERRORS: dict[str, type[HatchetManifestError]] = {"ConfigError": ConfigError, "LedgerError": LedgerError}


class BoundedRenderer:
    """`Renderer`'s interface (what the commands use), rendering in a bounded worker process (module docstring).

    The worker starts when this is made (its imports overlap the caller's setup; with `start=False`, at the first
    `prepare`, `runs` or `count`, and never when there is nothing to render) and gets its job at the first
    `prepare`, `runs` or `count`. Use it as a context manager, or `close()` it: that stops the worker."""

    def __init__(
        self,
        manifests: list[LoadedManifest],
        values: Values | None = None,
        limits: Limits | None = None,
        schema_dir: Path | None = Path("schemas/inputs"),
        reveal_secrets: bool = False,
        bounds: RenderBounds | None = None,
        process: BoundedProcess | None = None,
        start: bool = True,
    ) -> None:
        """`process`: a worker started already with the same bounds (by default, one is started now, or when
        first needed if not `start`)."""
        self.manifests = manifests
        self.values = values or Values()
        self.limits = limits or Limits()
        self.schemas = SchemaRegistry(schema_dir)
        self.reveal = reveal_secrets
        self.bounds = bounds or RenderBounds()
        self.warnings: list[str] = []
        self.overrides: dict[str, Any] = {}
        self._count: int | None = None
        self._entries: list[EntryRef] = []
        self._job_sent = False
        self._used = False
        self._closed = False
        self._proc: BoundedProcess | None = None
        self._finalizer: weakref.finalize[[BoundedProcess], BoundedRenderer] | None = None
        if process is not None or start:
            self._attach(process)

    def _attach(self, process: BoundedProcess | None) -> BoundedProcess:
        if process is None:
            process = BoundedProcess(WORKER_MODULE, self.bounds, self.limits.access)
        process.manifests = self.manifests
        self._proc = process
        self._finalizer = weakref.finalize(self, _stop, process)
        return process

    @property
    def _process(self) -> BoundedProcess:
        """The worker, started now if it was not."""
        if self._proc is not None:
            return self._proc
        if self._closed:
            raise RuntimeError("this BoundedRenderer is closed")
        return self._attach(None)

    def keep(self, manifests: list[LoadedManifest]) -> None:
        """Render only these of the manifests (before anything was asked of the worker)."""
        if self._job_sent:
            raise RuntimeError("keep() comes before the render starts")
        self.manifests = manifests
        if self._proc is not None:
            self._proc.manifests = manifests

    def _nothing_to_render(self) -> bool:
        """No manifest and no worker: nothing is asked of one (none is started)."""
        return not self.manifests and self._proc is None and not self._job_sent

    def fresh(self) -> BoundedRenderer:
        """A new renderer (and worker) of the same manifests, values and settings."""
        return BoundedRenderer(
            self.manifests, self.values, self.limits, self.schemas.schema_dir, self.reveal, self.bounds
        )

    def close(self) -> None:
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> BoundedRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self) -> int:
        """Compile every entry and size every loop (in the worker); the number of runs. Raises ManifestError."""
        if self._count is not None:
            return self._count
        if self._nothing_to_render():
            self._count = 0
            return 0
        if not self._job_sent:
            self._job_sent = True
            job = RenderJob(self.manifests, self.values, self.limits, self.schemas.schema_dir, self.reveal)
            self._process.send(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
        kind, body = self._next()
        if kind != b"P":
            self._final(kind, body)
            raise RenderWorkerError(f"a render worker sent {kind!r} where its prepared entries were due")
        count: int
        count, entries, self.overrides = pickle.loads(body)
        self._entries = [EntryRef(self.manifests[m], index, n) for m, index, n in entries]
        self._count = count
        return count

    def entries(self) -> list[EntryRef]:
        self.prepare()
        return list(self._entries)

    def runs(self) -> Iterator[RenderedRun]:
        """Stream every valid run, as `Renderer.runs` does (ManifestError after the last one, if any had problems)."""
        self.prepare()
        if self._nothing_to_render():
            return
        self._start(b"r")
        try:
            while True:
                kind, body = self._next()
                if kind == b"B":
                    for t in marshal.loads(body):
                        yield RenderedRun(*t)
                elif kind == b"b":
                    for t in pickle.loads(body):
                        yield RenderedRun(*t)
                else:
                    self._final(kind, body)
                    return
        finally:
            self.close()

    def count(self) -> int:
        """Render and check every run in the worker, keeping none: their number. Raises ManifestError."""
        self.prepare()
        if self._nothing_to_render():
            return 0
        self._start(b"c")
        try:
            kind, body = self._next()
            self._final(kind, body)
            return cast(int, pickle.loads(body)[0])
        finally:
            self.close()

    def _start(self, command: bytes) -> None:
        if self._used:
            raise RuntimeError("a BoundedRenderer renders once: use fresh() to render again")
        self._used = True
        self._process.send(command)
        self._process.close_stdin()

    def _next(self) -> tuple[bytes, bytes]:
        try:
            frame = self._process.read_frame()
        except WorkerGone:
            failure = self._process.failure()
            if failure is not None:
                raise failure from None
            code = self._process.returncode()
            raise RenderWorkerError(
                f"a render worker stopped unexpectedly (exit code {code}; see its error above)"
            ) from None
        return frame[:1], frame[1:]

    def _final(self, kind: bytes, body: bytes) -> None:
        """Handle a frame that ends the render: E returns; F, C and X raise."""
        if kind == b"E":
            self.warnings = list(pickle.loads(body)[1])
            return
        if kind == b"F":
            problems, warnings = pickle.loads(body)
            self.warnings = list(warnings)
            raise ManifestError([Problem(*p) for p in problems])
        if kind == b"C":
            name, message, exit_code = pickle.loads(body)
            error = _ERRORS.get(name, HatchetManifestError)(message)
            error.exit_code = exit_code
            raise error
        if kind == b"X":
            message, details = pickle.loads(body)
            raise RenderWorkerError(f"a render worker failed: {message}", details)
        raise RenderWorkerError(f"a render worker sent an unknown message {kind!r}")
