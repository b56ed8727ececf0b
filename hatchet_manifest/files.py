"""Reading a file the operator or a pull request names, within bounds: a regular file only (a FIFO or a device is
refused without blocking on it), at most `limit` bytes whatever its size claims."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

FileTrouble = Literal["special", "too_large", "os"]


class FileProblem(Exception):
    """Why a file was not read: `kind` says which, `detail` is the operating system's words (kind "os")."""

    def __init__(self, kind: FileTrouble, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.kind: FileTrouble = kind
        self.detail = detail


def read_bounded(path: Path, limit: int, *, follow_links: bool = True) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (FileProblem otherwise)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO does not wait for a writer; fstat checks what opened
    except OSError as exc:
        raise FileProblem("os", exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem("special")
        if info.st_size > limit:
            raise FileProblem("too_large")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileProblem("os", exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > limit:
        raise FileProblem("too_large")
    return b"".join(chunks)
