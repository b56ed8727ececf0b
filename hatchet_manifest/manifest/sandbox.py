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

import contextlib
import importlib.util
import marshal
import math
import mmap
import os
import pickle
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, cast

from hatchet_manifest.errors import ConfigError, HatchetManifestError, LedgerError, ManifestError, Problem
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.rendered import Limits, RenderedRun
from hatchet_manifest.manifest.validate import SchemaRegistry
from hatchet_manifest.manifest.values import Values

DEFAULT_MEMORY = 1 << 30
DEFAULT_TIMEOUT = 60.0
MIN_MEMORY = 64 << 20  # the worker itself needs about 50 MiB of address space
MEMORY_ENV = "HATCHET_MANIFEST_RENDER_MEMORY"
TIMEOUT_ENV = "HATCHET_MANIFEST_RENDER_TIMEOUT"
WORKER_MODULE = "hatchet_manifest.manifest.render_worker"
EXIT_MEMORY = 86  # a worker whose memory ran out (MemoryError) exits with this code
STARTUP_TIMEOUT = 120.0  # seconds a worker may take to import what it needs (no template runs then)
BATCH = 256  # runs per frame
_FRAME = struct.Struct("<I")
_PIPE_SIZE = 1 << 20

# -- bounds ---------------------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.I)


def parse_size(text: str) -> int:
    """`1GiB`, `200MiB`, `512M` (binary), `1GB` (decimal), or bytes -> bytes."""
    m = _SIZE.match(text)
    if not m or (m.group(3).lower() == "i"):
        raise ValueError(f"bad size {text!r}: use e.g. 1GiB, 512MiB, 2G")
    number, unit, suffix = float(m.group(1)), m.group(2).lower(), m.group(3).lower()
    power = " kmgt".index(unit) if unit else 0
    base = 1000 if suffix == "b" and unit else 1024
    return int(number * base**power)


def parse_seconds(text: str) -> float:
    """`60s`, `2m`, `1.5s`, `500ms`, or seconds -> seconds."""
    m = _SECONDS.match(text)
    if not m:
        raise ValueError(f"bad duration {text!r}: use e.g. 60s, 2m, 500ms")
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[(m.group(2) or "s").lower()]
    return float(m.group(1)) * factor


def human_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def human_seconds(s: float) -> str:
    return f"{s:g}s"


@dataclass(frozen=True)
class RenderBounds:
    """What one render may use as a whole: `memory` bytes of address space, `timeout` seconds of CPU time and of
    waiting for it."""

    memory: int = DEFAULT_MEMORY
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.memory < MIN_MEMORY:
            raise ConfigError(
                f"--render-memory must be at least {human_size(MIN_MEMORY)}, got {human_size(self.memory)}"
            )
        if not self.timeout > 0:
            raise ConfigError(f"--render-timeout must be positive, got {self.timeout:g}")


class RenderBoundError(ManifestError):
    """A render went past its bounds; its one problem names the manifest and entry being rendered then."""


class RenderWorkerError(RuntimeError):
    """A render worker failed (an internal error); `details`: its traceback, scrubbed (shown with --traceback)."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


# -- where a worker is ------------------------------------------------------------------------------------------

PHASE_START = 0  # reading its job and the values
PHASE_ENTRY = 1  # compiling or rendering run entry (manifest, index)
PHASE_DONE = 2


class ProgressCell:
    """Three integers (phase, manifest number, entry index) in a private temporary file mapped by the parent and
    its worker: written by the worker as each entry starts, read by the parent when the worker is stopped."""

    _LAYOUT = struct.Struct("<iii")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, self._LAYOUT.size)

    @classmethod
    def create(cls) -> ProgressCell:
        f = tempfile.TemporaryFile(prefix="hatchet-manifest-progress-")  # noqa: SIM115 - closed by close()
        fd = os.dup(f.fileno())
        f.close()
        os.ftruncate(fd, cls._LAYOUT.size)
        return cls(fd)

    def set(self, phase: int, manifest: int = -1, entry: int = -1) -> None:
        self._LAYOUT.pack_into(self._map, 0, phase, manifest, entry)

    def get(self) -> tuple[int, int, int]:
        """(phase, manifest, entry); (PHASE_START, -1, -1) once closed."""
        if self._map.closed:
            return PHASE_START, -1, -1
        phase, manifest, entry = self._LAYOUT.unpack_from(self._map, 0)
        return phase, manifest, entry

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


# -- the parent's side of a worker ----------------------------------------------------------------------------


class WorkerGone(Exception):
    """The worker's output ended (it exited or was killed); `BoundedProcess.failure()` says why."""


def _package_roots() -> list[str]:
    """Where hatchet_manifest and hatchet_client are (found, not imported: rendering never imports the client)."""
    roots = set()
    for name in ("hatchet_manifest", "hatchet_client"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            roots.add(str(Path(spec.origin).resolve().parent.parent))
    return sorted(roots)


class BoundedProcess:
    """A worker process (`python -P -m MODULE`) that bounds itself (see the module docstring), and the parent's
    side of it: writing to its stdin, reading length-prefixed frames from its stdout under the wall-clock
    deadline, and saying why it stopped (`failure`)."""

    def __init__(self, module: str, bounds: RenderBounds | None = None) -> None:
        """Start the worker; it imports what it needs, then waits for its bounds (`bound`: given now, or later,
        once the caller knows them), then for its job."""
        self.bounds = RenderBounds()
        self._bound = False
        self.manifests: list[LoadedManifest] = []  # the job's, to name the entry a bound stopped
        self.waited = 0.0  # seconds spent waiting for the worker's output, ready frame excepted
        self.expired = False
        self._cell = ProgressCell.create()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*_package_roots(), *filter(None, [env.get("PYTHONPATH")])])
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", module, "--progress-fd", str(self._cell.fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                pass_fds=(self._cell.fd,),
            )
        except BaseException:
            self._cell.close()
            raise
        assert self.proc.stdout is not None and self.proc.stdin is not None
        with contextlib.suppress(OSError, AttributeError):  # a bigger pipe lets the worker run ahead
            import fcntl

            fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self._fd = self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._buf = bytearray()
        self._ready = False
        self._stopped = False
        self._cpu = 0.0  # the worker's CPU time, once it has exited
        self._expiry: RenderBoundError | None = None
        if bounds is not None:
            self.bound(bounds)

    def bound(self, bounds: RenderBounds) -> None:
        """Tell the worker its bounds (once): it limits itself, then tells it is ready, then reads its job."""
        assert not self._bound, "a worker is bounded once"
        self._bound = True
        self.bounds = bounds
        self.send(pickle.dumps((bounds.memory, bounds.timeout)))

    def send(self, data: bytes) -> None:
        """Write to the worker's stdin (a worker that died already is reported when its output is read)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def read_frame(self) -> bytes:
        """The next frame's payload. Raises WorkerGone when the output ends, RenderBoundError past the deadline."""
        assert self._bound, "a worker's bounds are given before its output is read"
        if not self._ready:
            header = self._read(_FRAME.size, timed=False)
            self._read(_FRAME.unpack(header)[0], timed=False)  # the ready frame: the worker has bounded itself
            self._ready = True
        (size,) = _FRAME.unpack(self._read(_FRAME.size, timed=True))
        return self._read(size, timed=True)

    def _read(self, n: int, timed: bool) -> bytes:
        buf = self._buf
        while len(buf) < n:
            limit = self.bounds.timeout - self.waited if timed else STARTUP_TIMEOUT
            if limit <= 0:
                raise self._expire()
            start = time.monotonic()
            events = self._poll.poll(limit * 1000)
            if timed:
                self.waited += time.monotonic() - start
            if not events:
                if timed:
                    raise self._expire()
                self.stop()
                raise RenderWorkerError(f"a render worker did not start within {STARTUP_TIMEOUT:g}s")
            chunk = os.read(self._fd, max(n - len(buf), 1 << 16))
            if not chunk:
                raise WorkerGone()
            buf += chunk
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def _expire(self) -> RenderBoundError:
        """Stop a worker past its deadline; the error (the same one when asked again) names where it was."""
        if self._expiry is None:
            self.expired = True
            timeout = human_seconds(self.bounds.timeout)
            self._expiry = self.bound_error(f"rendering took more than {timeout} (--render-timeout)")
            self.stop()
        return self._expiry

    def where(self) -> tuple[str, int | None, str]:
        """(file, line, entry) the worker was rendering, as far as it said."""
        phase, manifest, entry = self._cell.get()
        if phase == PHASE_ENTRY and 0 <= manifest < len(self.manifests):
            m = self.manifests[manifest]
            with contextlib.suppress(Exception):
                return m.file, m.doc.line_of(("runs", entry)), f"runs[{entry}]"
            return m.file, None, f"runs[{entry}]"
        return "", None, ""

    def bound_error(self, message: str) -> RenderBoundError:
        file, line, where = self.where()
        return RenderBoundError([Problem(file, line, message, where)])

    def failure(self) -> RenderBoundError | None:
        """Why the worker's output ended, when a bound stopped it (None: it exited otherwise; see its code)."""
        if self.expired:
            return self._expire()
        code = self.returncode()
        if code == EXIT_MEMORY:
            return self.bound_error(
                f"rendering used more than {human_size(self.bounds.memory)} of memory (--render-memory)"
            )
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and self._cpu >= self.bounds.timeout):
            return self.bound_error(
                f"rendering used more than {human_seconds(self.bounds.timeout)} of CPU time (--render-timeout)"
            )
        if code == -signal.SIGKILL:
            return self.bound_error(
                "the render worker was killed (SIGKILL, by the system: out of memory?); see --render-memory"
            )
        return None

    def returncode(self) -> int:
        """The worker's exit code, waiting for it (a worker whose output ended is exiting), and its CPU time."""
        if self.proc.returncode is None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                except ChildProcessError:  # reaped already (by Popen): its code is known, its CPU time is not
                    return self.proc.wait()
                if pid:
                    break
                if time.monotonic() > deadline:
                    with contextlib.suppress(OSError):
                        self.proc.kill()
                time.sleep(0.01)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self._cpu = usage.ru_utime + usage.ru_stime
        return cast(int, self.proc.returncode)

    def stop(self) -> None:
        """Kill the worker if it still runs, and release everything (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        self.proc.wait()
        self.close_stdin()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._cell.close()


def _stop(process: BoundedProcess) -> None:
    process.stop()


# -- the worker's side ----------------------------------------------------------------------------------------

_reserve: bytearray | None = None  # released when memory runs out, so that the worker can exit cleanly


def worker_start(argv: list[str]) -> tuple[IO[bytes], IO[bytes], ProgressCell]:
    """Set up a worker process: signals, output streams, and its bounds (the first message on stdin), then tell
    the parent it is ready. Returns (its job's input, its frames' output, its progress cell)."""
    global _reserve
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and so is SIGTERM (a cancelled CI job signals the group)
    options = dict(zip(argv[::2], argv[1::2], strict=False))
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the message stream
    with contextlib.suppress(ImportError):
        from hatchet_manifest.scrub import ScrubbingStream

        sys.stdout = sys.stderr = cast(TextIO, ScrubbingStream(sys.stderr))  # scrubbed of the secrets read here
    cell = ProgressCell(int(options["--progress-fd"]))
    cell.set(PHASE_START)
    stdin = sys.stdin.buffer
    try:
        memory, timeout = pickle.load(stdin)
    except EOFError:  # the parent went away before it needed this worker
        os._exit(0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would dump a core of up to --render-memory
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + timeout)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    try:
        _reserve = bytearray(1 << 20)
    except MemoryError:
        out_of_memory(cell)
    send_frame(out, b"R")
    return stdin, out, cell


def send_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(_FRAME.pack(len(payload)))
    out.write(payload)
    out.flush()


def out_of_memory(cell: ProgressCell) -> None:
    """Exit with EXIT_MEMORY (the cell still says where the worker was)."""
    global _reserve
    _reserve = None
    os._exit(EXIT_MEMORY)


@contextlib.contextmanager
def guarded(cell: ProgressCell, out: IO[bytes]) -> Iterator[None]:
    """Run a worker's work: MemoryError exits with EXIT_MEMORY; a bug is told to the parent (scrubbed of
    secrets) as an X frame; a parent gone away ends the worker quietly."""
    try:
        yield
    except MemoryError:
        out_of_memory(cell)
    except (BrokenPipeError, EOFError):  # the parent is gone (killed, or it stopped us): nothing to report
        os._exit(1)
    except Exception as exc:  # noqa: BLE001 - a bug: told to the parent scrubbed of secrets, not as a traceback
        global _reserve
        _reserve = None
        with contextlib.suppress(Exception):
            from hatchet_manifest.scrub import scrub

            trace = "".join(traceback.format_exception(exc))
            send_frame(out, b"X" + pickle.dumps((scrub(f"{type(exc).__name__}: {exc}"), scrub(trace))))
        os._exit(1)


# -- rendering in a worker ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderJob:
    manifests: list[LoadedManifest]
    values: Values
    limits: Limits
    schema_dir: Path | None
    reveal: bool


@dataclass(frozen=True)
class EntryRef:
    """What the parent knows of a compiled entry (Renderer.entries)."""

    manifest: LoadedManifest
    index: int
    count: int


def _problems(exc: ManifestError) -> list[tuple[Any, ...]]:
    return [(p.file, p.line, p.message, p.where, p.path) for p in exc.problems]


def _run_tuple(r: RenderedRun) -> tuple[Any, ...]:
    return (
        r.key,
        r.workflow_name,
        r.input,
        r.additional_metadata,
        r.priority,
        r.manifest,
        r.file,
        r.line,
        r.where,
        r.secret_input,
        r.secret_metadata,
        r.uses_secret,
    )


def worker_main() -> None:
    """Entry point of a render worker (`python -m hatchet_manifest.manifest.render_worker`)."""
    inp, out, cell = worker_start(sys.argv[1:])
    with guarded(cell, out):
        _serve(inp, out, cell)
        out.close()


def _serve(inp: IO[bytes], out: IO[bytes], cell: ProgressCell) -> None:
    from hatchet_manifest.manifest.render import Renderer

    job: RenderJob = pickle.load(inp)
    renderer = Renderer(job.manifests, job.values, job.limits, job.schema_dir, job.reveal)
    numbers = {id(m): k for k, m in enumerate(job.manifests)}
    renderer.on_entry = lambda m, index: cell.set(PHASE_ENTRY, numbers[id(m)], index)
    try:
        count = renderer.prepare()
        entries = [(numbers[id(e.manifest)], e.index, e.count) for e in renderer.entries()]
        send_frame(out, b"P" + pickle.dumps((count, entries, renderer.overrides), pickle.HIGHEST_PROTOCOL))
        command = inp.read(1)
        if command == b"c":
            n = renderer.count()
            send_frame(out, b"E" + pickle.dumps((n, renderer.warnings)))
        elif command == b"r":
            batch: list[tuple[Any, ...]] = []
            n = 0
            try:
                for run in renderer.runs():
                    batch.append(_run_tuple(run))
                    if len(batch) == BATCH:
                        _send_runs(out, batch)
                        n += len(batch)
                        batch = []
            finally:  # the valid runs before the problems are sent too, as Renderer.runs yields them
                _send_runs(out, batch)
            send_frame(out, b"E" + pickle.dumps((n + len(batch), renderer.warnings)))
    except ManifestError as exc:
        send_frame(out, b"F" + pickle.dumps((_problems(exc), renderer.warnings)))
    except HatchetManifestError as exc:
        send_frame(out, b"C" + pickle.dumps((type(exc).__name__, str(exc), exc.exit_code)))
    cell.set(PHASE_DONE)


def _send_runs(out: IO[bytes], batch: list[tuple[Any, ...]]) -> None:
    if not batch:
        return
    try:
        payload = b"B" + marshal.dumps(batch)
    except ValueError:  # a value marshal does not take (a str subclass, e.g. Markup): pickle keeps its type
        payload = b"b" + pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
    send_frame(out, payload)


_ERRORS: dict[str, type[HatchetManifestError]] = {"ConfigError": ConfigError, "LedgerError": LedgerError}


class EntryOrigin(Protocol):
    """What is known of a compiled run entry: its manifest, its index in `runs`, its number of items."""

    @property
    def manifest(self) -> LoadedManifest: ...

    @property
    def index(self) -> int: ...

    @property
    def count(self) -> int: ...


class Rendering(Protocol):
    """What the commands use of a renderer: `Renderer` (in this process) and `BoundedRenderer` (in a worker)."""

    manifests: list[LoadedManifest]
    values: Values
    limits: Limits
    schemas: SchemaRegistry
    reveal: bool
    warnings: list[str]
    overrides: dict[str, Any]

    def prepare(self) -> int: ...

    def runs(self) -> Iterator[RenderedRun]: ...

    def count(self) -> int: ...

    def entries(self) -> Sequence[EntryOrigin]: ...

    def fresh(self) -> Rendering: ...

    def close(self) -> None: ...


class BoundedRenderer:
    """`Renderer`'s interface (what the commands use), rendering in a bounded worker process (module docstring).

    The worker starts when this is made (its imports overlap the caller's setup) and gets its job at the first
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
    ) -> None:
        """`process`: a worker started already with the same bounds (by default, one is started now)."""
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
        self._process = process if process is not None else BoundedProcess(WORKER_MODULE, self.bounds)
        self._process.manifests = manifests
        self._finalizer = weakref.finalize(self, _stop, self._process)

    def fresh(self) -> BoundedRenderer:
        """A new renderer (and worker) of the same manifests, values and settings."""
        return BoundedRenderer(
            self.manifests, self.values, self.limits, self.schemas.schema_dir, self.reveal, self.bounds
        )

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> BoundedRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self) -> int:
        """Compile every entry and size every loop (in the worker); the number of runs. Raises ManifestError."""
        if self._count is not None:
            return self._count
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
