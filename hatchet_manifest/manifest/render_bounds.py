"""What a render may use as a whole, and where its worker is.

`RenderBounds` (`--render-memory`, `--render-timeout`: parsed and shown by `parse_size`, `parse_seconds`,
`human_size`, `human_seconds`), the errors of a render stopped by them or of a worker that failed, and
`ProgressCell`: the few bytes a worker and its parent share to say which run entry it is rendering. How the
bounds are enforced is told in `sandbox.py`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import tempfile
from dataclasses import dataclass

from hatchet_manifest.errors import ConfigError, ManifestError

DEFAULT_MEMORY = 1 << 30
DEFAULT_TIMEOUT = 60.0
MIN_MEMORY = 64 << 20  # the worker itself needs about 50 MiB of address space
MEMORY_ENV = "HATCHET_MANIFEST_RENDER_MEMORY"
TIMEOUT_ENV = "HATCHET_MANIFEST_RENDER_TIMEOUT"
EXIT_MEMORY = 86  # a worker whose memory ran out (MemoryError) exits with this code

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
SECTIONS = ("runs", "crons", "schedules", "events")  # the entry's section, by its number in the cell


class ProgressCell:
    """Four integers (phase, manifest number, entry index, section number) in a private temporary file mapped by the parent and
    its worker: written by the worker as each entry starts, read by the parent when the worker is stopped."""

    _LAYOUT = struct.Struct("<iiii")

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

    def set(self, phase: int, manifest: int = -1, entry: int = -1, section: str = "runs") -> None:
        self._LAYOUT.pack_into(self._map, 0, phase, manifest, entry, SECTIONS.index(section))

    def get(self) -> tuple[int, int, int, str]:
        """(phase, manifest, entry, section); (PHASE_START, -1, -1, "runs") once closed."""
        if self._map.closed:
            return PHASE_START, -1, -1, "runs"
        phase, manifest, entry, section = self._LAYOUT.unpack_from(self._map, 0)
        return phase, manifest, entry, SECTIONS[section] if 0 <= section < len(SECTIONS) else "runs"

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
