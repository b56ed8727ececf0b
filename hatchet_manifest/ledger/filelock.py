"""Per-target locks for the SQLite ledger: flock(2) on one file per target beside the database.

The kernel releases a flock when its holder dies (kill -9 included), so a crash never leaves a stale lock. The
holder writes who it is into the file, for the message of the one that waits.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.values import Clock, LedgerLockedError, LockHolder, Target
from hatchet_manifest.text import escape

POLL_SECONDS = 0.05


def lock_path(lock_dir: Path, target: Target) -> Path:
    return lock_dir / (hashlib.sha256(target.id.encode()).hexdigest()[:32] + ".lock")


def _read_holder(fd: int) -> LockHolder | None:
    """The holder recorded in the file, if it wrote a complete record (it may be in the middle of writing)."""
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw)
        return LockHolder(host=str(info["host"]), pid=int(info["pid"]), since=datetime.fromisoformat(info["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_holder(fd: int, target: Target, now: datetime) -> None:
    info = {"target": target.id, "host": socket.gethostname(), "pid": os.getpid(), "since": now.isoformat()}
    data = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


@contextmanager
def flock_target(lock_dir: Path, target: Target, wait: float, clock: Clock) -> Iterator[None]:
    """Hold the target's lock for the duration of the block; wait up to `wait` seconds for it."""
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(lock_dir, target), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise LedgerError(
            f"cannot take the lock of target {escape(target.id)}: cannot create its lock file in {escape(str(lock_dir))}: "
            f"{reason}"
        ) from None
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LedgerLockedError(target, _read_holder(fd), wait) from None
                time.sleep(min(POLL_SECONDS, remaining))
        try:
            _write_holder(fd, target, clock())
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
