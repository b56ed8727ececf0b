"""The worker side of a parallel apply (see parallel.py): `Job`, what a worker gets pickled on its stdin, and `work`,
rendering one shard and sending its blocks (keys, digests, entries, encoded wire bytes) then its problems, framed
on its stdout pipe; `main` is the worker process's entry point (`python -m hatchet_manifest.apply.shard_worker`).
"""

from __future__ import annotations

import array
import contextlib
import marshal
import os
import pickle
import struct
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hatchet_client import RunEncoder
from hatchet_client.errors import RunValidationError

from hatchet_manifest.apply.executor import wire_item
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.render import SHARD_BLOCK, Renderer
from hatchet_manifest.manifest.rendered import Limits, canonical_json
from hatchet_manifest.manifest.sandbox import PHASE_ENTRY, ProgressCell, out_of_memory, worker_start
from hatchet_manifest.manifest.values import Values
from hatchet_manifest.plan.planner import run_digest
from hatchet_manifest.scrub import scrub

_FRAME = struct.Struct("<I")


@dataclass(frozen=True)
class Job:
    manifests: list[LoadedManifest]
    overrides: dict[str, Any]
    limits: Limits
    schema_dir: Path | None
    shard: tuple[int, int]
    namespace: str  # for digests (normalised)
    encoder_namespace: str
    max_send: int
    stamp: bool


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    out.write(_FRAME.pack(len(data)) + data)


def work(job: Job, out: IO[bytes], cell: ProgressCell | None = None) -> None:
    """Render one shard and send its blocks, then its problems; `cell` is told which entry is being rendered."""
    renderer = Renderer(job.manifests, Values(extra=job.overrides), job.limits, job.schema_dir, reveal_secrets=True)
    if cell is not None:
        numbers = {id(m): k for k, m in enumerate(job.manifests)}
        renderer.on_entry = lambda m, index, section: cell.set(PHASE_ENTRY, numbers[id(m)], index, section)
    encoder = RunEncoder(job.encoder_namespace, job.max_send)
    namespace, stamp = job.namespace, job.stamp
    current = -1
    keys: list[str] = []
    digests: list[str] = []
    entries: list[int] = []
    items: list[bytes] = []
    errors: list[tuple[int, str, str]] = []  # (position in the block, field, problem): refused by the encoder

    workflows: dict[str, int] = {}  # the block's workflow names, numbered
    workflow_of = array.array("I")  # each run's number in `workflows`

    def flush() -> None:
        _send(
            out,
            (
                "B",
                current,
                keys,
                digests,
                entries,
                [len(i) for i in items],
                b"".join(items),
                errors,
                list(workflows),
                workflow_of.tobytes(),
            ),
        )

    for entry_no, ordinal, run in renderer.stream(job.shard):
        block = ordinal // SHARD_BLOCK
        if block != current:
            if keys:
                flush()
                keys, digests, entries, items, errors = [], [], [], [], []
                workflows, workflow_of = {}, array.array("I")
            current = block
        key = run.key
        input_json = canonical_json(run.input)  # once, for the digest and (without secrets) the wire
        digest = run_digest(run, namespace, input_json)
        try:
            item = wire_item(encoder, run, key, stamp, digest, input_json)
        except RunValidationError as exc:
            item = b""
            errors.append((len(keys), exc.field, exc.problem))
        keys.append(key)
        digests.append(digest)
        entries.append(entry_no)
        items.append(item)
        workflow_of.append(workflows.setdefault(run.workflow_name, len(workflows)))
    if keys:
        flush()
    problems = [
        (ordinal, p.file, p.line, p.message, p.where, p.path)
        for ordinal, p in zip(renderer.problem_ordinals, renderer.problems, strict=True)
    ]
    _send(out, ("E", renderer.problem_count, problems))
    out.flush()


def main() -> None:
    """Entry point of a worker process: the job on stdin, messages on the original stdout. The worker bounds
    itself first (--render-memory, --render-timeout: see hatchet_manifest.manifest.sandbox); signals, output
    streams and secrets are handled as by the render worker."""
    stdin, out, cell = worker_start(sys.argv[1:])
    try:
        job = pickle.load(stdin)
        work(job, out, cell)
        out.close()
    except MemoryError:
        out_of_memory(cell)
    except (BrokenPipeError, EOFError):  # the parent is gone (killed, or it stopped us): nothing to report
        os._exit(1)
    except Exception as exc:  # noqa: BLE001 - a bug: told to the parent scrubbed of secrets, not as a traceback
        with contextlib.suppress(OSError):
            trace = "".join(traceback.format_exception(exc))
            _send(out, ("X", scrub(f"{type(exc).__name__}: {exc}"), scrub(trace)))
            out.close()
        os._exit(1)
