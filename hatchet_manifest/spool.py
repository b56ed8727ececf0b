"""A private on-disk spool of the runs an apply will send, already validated and encoded for the wire, so
that a million runs are rendered, validated and encoded once, before anything is sent, without holding them
in memory; sending then only reads bytes back.

The file holds runs as they will be sent (secret values included): it is created 0600 in a private temporary
directory and deleted when the apply ends. Record: <u32 tag length><u32 item length><tag><item bytes>, the tag
in marshal format (fast, and safe here: the file is our own, private, and lives only as long as the apply).
"""

from __future__ import annotations

import marshal
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hatchet_client import RunEncoder, WorkflowRun

from hatchet_manifest.apply import Tag

_HEADER = struct.Struct("<II")


class Spool:
    def __init__(self, encoder: RunEncoder, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._encoder = encoder
        self._dir = tempfile.TemporaryDirectory(prefix="hatchet-manifest-", dir=directory)
        self.path = Path(self._dir.name) / "runs.bin"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self.count = 0

    def write(self, runs: Iterable[tuple[Tag, WorkflowRun]]) -> int:
        """Encode (which validates for the wire: sizes, metadata, JSON) and store; returns the number of runs."""
        dumps = marshal.dumps
        encode_item = self._encoder.encode_item
        pack = _HEADER.pack
        write = self._file.write
        count = self.count
        for tag, run in runs:
            item = encode_item(run, count, tag.key)
            tag_bytes = dumps(tuple(tag))
            write(pack(len(tag_bytes), len(item)) + tag_bytes + item)
            count += 1
        self.count = count
        self._file.flush()
        return count

    def __iter__(self) -> Iterator[tuple[Tag, bytes]]:
        self._file.flush()
        loads = marshal.loads
        size = _HEADER.size
        unpack = _HEADER.unpack
        with self.path.open("rb", buffering=1 << 20) as f:
            read = f.read
            while header := read(size):
                tag_len, item_len = unpack(header)
                tag = Tag(*loads(read(tag_len)))
                yield tag, read(item_len)

    def close(self) -> None:
        self._file.close()
        self._dir.cleanup()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
