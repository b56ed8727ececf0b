"""A private on-disk spool of the runs an apply will send, already validated and encoded for the wire, so
that a million runs are rendered, validated and encoded once, before anything is sent, without holding them
in memory; sending then only reads bytes back.

The file holds runs as they will be sent (secret values included): it is created 0600 in a private temporary
directory and deleted when the apply ends. The live spool holds an exclusive lock on its file; a spool left by
an apply that was killed (kill -9, power loss) holds none, and the next spool made in the same directory
deletes it, so secrets do not linger on disk. Runs are stored in chunks exactly as they will be sent (at most
`batch_size` runs and the encoder's max send size, grouped as hatchet_client's `chunked` groups them), so that
sending reads whole requests back: <u32 meta length><u32 blob length><meta><blob>, meta being (tags, item
lengths) in marshal format (fast, and safe here: the file is our own, private, and lives only as long as the
apply) and blob the runs' encoded bytes one after the other (a BulkTriggerWorkflowRequest's body).
"""

from __future__ import annotations

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
FILE = "runs.bin"


STALE_AFTER = 60.0  # seconds: a spool younger than this may be one being created (not locked yet)


def remove_stale(directory: Path) -> list[Path]:
    """Delete the spools in `directory` that no live apply holds (left by a killed one); returns them."""
    removed = []
    old = time.time() - STALE_AFTER
    for candidate in directory.glob(f"{PREFIX}*"):
        if candidate.is_symlink() or not candidate.is_dir() or candidate.stat().st_mtime > old:
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
        self._dir = tempfile.TemporaryDirectory(prefix=PREFIX, dir=directory)
        self.path = Path(self._dir.name) / FILE
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # this spool is live (see remove_stale); released when the file closes
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self.count = 0
        self._tags: list[tuple[Any, ...]] = []  # the chunk being filled
        self._lengths: list[int] = []
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def encoder(self) -> RunEncoder:
        return self._encoder

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
        with self.path.open("rb", buffering=1 << 20) as f:
            read = f.read
            while header := read(size):
                meta_len, blob_len = unpack(header)
                tags, lengths = loads(read(meta_len))
                yield tags, lengths, read(blob_len)

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
        self._dir.cleanup()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
