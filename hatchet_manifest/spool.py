"""A private on-disk spool of the runs an apply will send, already validated and encoded for the wire, so
that a million runs are rendered, validated and encoded once, before anything is sent, without holding them
in memory; sending then only reads bytes back.

The file holds runs as they will be sent (secret values included): it is created 0600 in a private temporary
directory (`directory`, which the parallel apply's workers also write their shards into) and deleted when the
apply ends. Runs are stored in blocks of up to BLOCK runs: <u32 meta length><u32 blob length><meta><blob>,
meta being (tags, item lengths) in marshal format (fast, and safe here: the file is our own, private, and lives
only as long as the apply) and blob the runs' encoded bytes one after the other.
"""

from __future__ import annotations

import marshal
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hatchet_client import RunEncoder, WorkflowRun

from hatchet_manifest.apply import Tag

_HEADER = struct.Struct("<II")
BLOCK = 1024


class Spool:
    def __init__(self, encoder: RunEncoder, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._encoder = encoder
        self._dir = tempfile.TemporaryDirectory(prefix="hatchet-manifest-", dir=directory)
        self.directory = Path(self._dir.name)  # private (0700): tempfile.mkdtemp
        self.path = self.directory / "runs.bin"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self.count = 0

    @property
    def encoder(self) -> RunEncoder:
        return self._encoder

    def write(self, runs: Iterable[tuple[Tag, WorkflowRun]]) -> int:
        """Encode (which validates for the wire: sizes, metadata, JSON) and store; returns the number of runs."""
        encode_item = self._encoder.encode_item
        count = self.count
        tags: list[tuple[Any, ...]] = []
        items: list[bytes] = []
        for tag, run in runs:
            items.append(encode_item(run, count, tag.key))
            tags.append(tuple(tag))
            count += 1
            if len(items) == BLOCK:
                self.write_block(tags, items)
                tags, items = [], []
        self.write_block(tags, items)
        self._file.flush()
        return self.count

    def write_block(self, tags: Sequence[tuple[Any, ...]], items: Sequence[bytes]) -> None:
        """Store runs already encoded (by `encoder.encode_item`), with their tags (Tag fields)."""
        self.write_encoded(tags, [len(i) for i in items], b"".join(items))

    def write_encoded(self, tags: Sequence[tuple[Any, ...]], lengths: Sequence[int], blob: bytes) -> None:
        """Store runs already encoded: their tags, the length of each, and their bytes one after the other."""
        if not lengths:
            return
        meta = marshal.dumps((list(tags), list(lengths)))
        self._file.write(_HEADER.pack(len(meta), len(blob)) + meta)
        self._file.write(blob)
        self.count += len(lengths)

    def __iter__(self) -> Iterator[tuple[Tag, bytes]]:
        self._file.flush()
        loads = marshal.loads
        size = _HEADER.size
        unpack = _HEADER.unpack
        make = Tag._make
        with self.path.open("rb", buffering=1 << 20) as f:
            read = f.read
            while header := read(size):
                meta_len, blob_len = unpack(header)
                tags, lengths = loads(read(meta_len))
                blob = read(blob_len)
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
