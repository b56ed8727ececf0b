"""A private on-disk spool of the runs an apply will send, so that a million runs are rendered and validated
once, before anything is sent, without holding them in memory.

The file may hold secret values (runs are stored as they will be sent): it is created 0600 in a private
temporary directory and deleted when the apply ends.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hatchet_client import WorkflowRun

from hatchet_manifest.apply import Tag

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class Spool:
    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix="hatchet-manifest-", dir=directory)
        self.path = Path(self._dir.name) / "runs.jsonl"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self.count = 0

    def write(self, runs: Iterable[tuple[Tag, WorkflowRun]]) -> int:
        encode = _ENCODER.encode
        lines: list[str] = []
        for tag, run in runs:
            lines.append(encode([tag.key, tag.digest, tag.manifest, tag.file, run]))
            if len(lines) == 1000:
                self._file.write("\n".join(lines) + "\n")
                self.count += len(lines)
                lines.clear()
        if lines:
            self._file.write("\n".join(lines) + "\n")
            self.count += len(lines)
        self._file.flush()
        return self.count

    def __iter__(self) -> Iterator[tuple[Tag, WorkflowRun]]:
        self._file.flush()
        loads = json.loads
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                key, digest, manifest, file, run = loads(line)
                yield Tag(key, digest, manifest, file), run

    def close(self) -> None:
        self._file.close()
        self._dir.cleanup()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
