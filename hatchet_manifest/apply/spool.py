"""A private on-disk spool of the runs an apply will send, already validated and encoded for the wire, so
that a million runs are rendered, validated and encoded once, before anything is sent, without holding them
in memory; sending then only reads bytes back.

The file holds runs as they will be sent (secret values included), so it never has a name: it is made 0600 and
unlinked (O_TMPFILE where the filesystem has it, else created and unlinked at once), written and read back
through its descriptor only, and the kernel frees it when the apply's process ends, however it ends (kill -9
included): nobody else can open it, and no secret lingers on disk. (Spools of earlier versions, which had a
name in a private directory, are deleted by the next spool made in the same directory, unless a live apply
holds their lock.) Runs are stored in chunks exactly as they will be sent (at most
`batch_size` runs and the encoder's max send size, grouped as hatchet_client's `chunked` groups them), so that
sending reads whole requests back: <u32 meta length><u32 blob length><meta><blob>, meta being (tags, item
lengths) in marshal format (fast, and safe here: the file is our own, private, and lives only as long as the
apply) and blob the runs' encoded bytes one after the other (a BulkTriggerWorkflowRequest's body).
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import marshal
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hatchet_client import RunEncoder, WorkflowRun
from hatchet_client.pipeline import MAX_BATCH_SIZE

from hatchet_manifest.apply.tags import Tag, TagFields

_HEADER = struct.Struct("<II")
PREFIX = "hatchet-manifest-"
SUFFIX = ".spool"
FILE = "runs.bin"  # in the directories of earlier versions' spools


STALE_AFTER = 60.0  # seconds: a spool younger than this may be one being created (not unlinked or locked yet)


def remove_stale(directory: Path) -> list[Path]:
    """Delete the spools in `directory` that no live apply holds; returns them. A spool has no name once made:
    what is found was left by a process killed while making one, or by an earlier version (a directory)."""
    removed = []
    old = time.time() - STALE_AFTER
    for candidate in directory.glob(f"{PREFIX}*"):
        if candidate.is_symlink() or candidate.stat().st_mtime > old:
            continue
        if candidate.is_file() and candidate.name.endswith(SUFFIX):  # killed between creating and unlinking it
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
            continue
        if not candidate.is_dir():
            continue
        try:
            fd = os.open(candidate / FILE, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:  # killed before its file was made: nothing in it
            shutil.rmtree(candidate, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live apply's
        try:
            shutil.rmtree(candidate)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


class Spool:
    def __init__(self, encoder: RunEncoder, directory: Path | None = None, batch_size: int = MAX_BATCH_SIZE) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be in 1..{MAX_BATCH_SIZE}, not {batch_size}")
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            remove_stale(directory)
        self._encoder = encoder
        self.batch_size = batch_size
        self._max_send = encoder.max_send
        self._fd = _nameless_file(directory or Path(tempfile.gettempdir()))
        try:
            self._file = os.fdopen(os.dup(self._fd), "wb", buffering=1 << 20)  # reads use pread on _fd
        except BaseException:
            os.close(self._fd)
            raise
        self.count = 0
        self._tags: list[tuple[Any, ...]] = []  # the chunk being filled
        self._lengths: list[int] = []
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def encoder(self) -> RunEncoder:
        return self._encoder

    def fileno(self) -> int:
        """The spool's file descriptor (it has no name)."""
        return self._fd

    @property
    def written(self) -> int:
        """Runs written so far, the chunk being filled included (`count` is updated as chunks are stored)."""
        return self.count + len(self._tags)

    def write(self, runs: Iterable[tuple[Tag, WorkflowRun]]) -> int:
        """Encode (which validates for the wire: sizes, metadata, JSON) and store; returns the number of runs."""
        encode_item = self._encoder.encode_item
        index = self.written
        batch_size, max_send = self.batch_size, self._max_send
        for tag, run in runs:
            item = encode_item(run, index, tag.key)
            index += 1
            n = len(item)
            if self._tags and self._size + n > max_send:
                self._flush()
            self._tags.append(tuple(tag))
            self._lengths.append(n)
            self._parts.append(item)
            self._size += n
            if len(self._tags) >= batch_size:
                self._flush()
        self.flush()
        return self.count

    def write_encoded(self, tags: Sequence[tuple[Any, ...]], lengths: Sequence[int], blob: bytes) -> None:
        """Store runs already encoded (by `encoder.encode_item`): their tags (Tag fields), the length of each, and
        their bytes one after the other."""
        n = len(lengths)
        start = offset = 0
        while start < n:
            end = min(n, start + self.batch_size - len(self._tags))
            size = sum(itertools.islice(lengths, start, end)) if end - start < n else len(blob)
            if self._size + size > self._max_send:  # fewer: as many as fit (each item fits alone: the encoder says)
                end, size = start, 0
                while end < n and self._size + size + lengths[end] <= self._max_send:
                    size += lengths[end]
                    end += 1
                if end == start:
                    self._flush()
                    continue
            self._tags.extend(tags[start:end])
            self._lengths.extend(lengths[start:end])
            self._parts.append(blob if offset == 0 and size == len(blob) else blob[offset : offset + size])
            self._size += size
            offset += size
            start = end
            if len(self._tags) >= self.batch_size:
                self._flush()

    def flush(self) -> None:
        """Store the last, incomplete chunk (after the last write)."""
        self._flush()
        self._file.flush()

    def _flush(self) -> None:
        if not self._tags:
            return
        meta = marshal.dumps((self._tags, self._lengths))
        blob = b"".join(self._parts)
        self._file.write(_HEADER.pack(len(meta), len(blob)) + meta)
        self._file.write(blob)
        self.count += len(self._tags)
        self._tags, self._lengths, self._parts, self._size = [], [], [], 0

    def _blocks(self) -> Iterator[tuple[list[tuple[Any, ...]], list[int], bytes]]:
        self.flush()
        loads = marshal.loads
        size = _HEADER.size
        unpack = _HEADER.unpack
        fd = self._fd
        end = os.fstat(fd).st_size
        offset = 0
        while offset < end:
            meta_len, blob_len = unpack(_pread(fd, size, offset))
            offset += size
            tags, lengths = loads(_pread(fd, meta_len, offset))
            offset += meta_len
            yield tags, lengths, _pread(fd, blob_len, offset)
            offset += blob_len

    def chunks(self, batch_size: int) -> Iterator[tuple[list[TagFields], bytes]] | None:
        """The stored runs as the chunks AdminClient.submit_chunks sends (tags as plain tuples of Tag's fields,
        request bytes), when they were stored for this batch size (None otherwise: use the runs one by one)."""
        if batch_size != self.batch_size:
            return None
        return ((tags, blob) for tags, _, blob in self._blocks())

    def __iter__(self) -> Iterator[tuple[Tag, bytes]]:
        make = Tag._make
        for tags, lengths, blob in self._blocks():
            offset = 0
            for tag, length in zip(tags, lengths, strict=True):
                end = offset + length
                yield make(tag), blob[offset:end]
                offset = end

    def close(self) -> None:
        self._file.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


def _nameless_file(directory: Path) -> int:
    """A new file in `directory`, readable and writable by this process only, with no name (see the module
    docstring); its descriptor."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        try:
            return os.open(directory, tmpfile | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # a filesystem without O_TMPFILE: created with a name, unlinked at once
            if exc.errno not in _NO_TMPFILE:
                raise
    fd, name = tempfile.mkstemp(prefix=PREFIX, suffix=SUFFIX, dir=directory)  # 0600, O_EXCL
    try:
        os.unlink(name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pread(fd: int, n: int, offset: int) -> bytes:
    """`n` bytes of the spool from `offset` (os.pread may return fewer at a time)."""
    data = os.pread(fd, n, offset)
    if len(data) == n:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = os.pread(fd, n - got, offset + got)
        if not more:
            raise OSError(f"the spool ends {n - got} bytes early")
        parts.append(more)
        got += len(more)
    return b"".join(parts)
