"""A bounded worker process, both sides of it: the parent's (`BoundedProcess`: starting it, giving it its
bounds, reading its frames under the wall-clock deadline, saying why it stopped) and the worker's
(`worker_start`: limiting itself; `send_frame`, `guarded`, `out_of_memory`). See `sandbox.py` for the bounds."""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TextIO, cast

from hatchet_manifest.errors import Problem
from hatchet_manifest.manifest.access import Access, worker_environment
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.render_bounds import (
    EXIT_MEMORY,
    PHASE_ENTRY,
    PHASE_START,
    ProgressCell,
    RenderBoundError,
    RenderBounds,
    RenderWorkerError,
    human_seconds,
    human_size,
)

STARTUP_TIMEOUT = 120.0  # seconds a worker may take to import what it needs (no template runs then)
_FRAME = struct.Struct("<I")
_PIPE_SIZE = 1 << 20

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
    """A worker process (`python -P -m MODULE`) that bounds itself (see sandbox.py's docstring), and the parent's
    side of it: writing to its stdin, reading length-prefixed frames from its stdout under the wall-clock
    deadline, and saying why it stopped (`failure`)."""

    def __init__(self, module: str, bounds: RenderBounds | None = None, access: Access | None = None) -> None:
        """Start the worker; it imports what it needs, then waits for its bounds (`bound`: given now, or later,
        once the caller knows them), then for its job. With `access`, the worker's environment holds only what
        templates may read (see access.worker_environment)."""
        self.bounds = RenderBounds()
        self._bound = False
        self.manifests: list[LoadedManifest] = []  # the job's, to name the entry a bound stopped
        self.waited = 0.0  # seconds spent waiting for the worker's output, ready frame excepted
        self.expired = False
        self._cell = ProgressCell.create()
        env = dict(os.environ) if access is None else worker_environment(access)
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
        phase, manifest, entry, section = self._cell.get()
        if phase == PHASE_ENTRY and 0 <= manifest < len(self.manifests):
            m = self.manifests[manifest]
            with contextlib.suppress(Exception):
                return m.file, m.doc.line_of((section, entry)), f"{section}[{entry}]"
            return m.file, None, f"{section}[{entry}]"
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
