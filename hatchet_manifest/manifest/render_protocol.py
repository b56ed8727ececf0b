"""Rendering in a bounded worker, the worker's side: `worker_main` reads a `RenderJob`, renders it with
`Renderer` and sends back frames (P: the prepared entries; B/b: batches of runs as tuples; E: the end; F: the
problems; C: another HatchetManifestError), which `sandbox.BoundedRenderer` reads."""

from __future__ import annotations

import marshal
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hatchet_manifest.errors import HatchetManifestError, ManifestError
from hatchet_manifest.manifest.bounded_process import guarded, send_frame, worker_start
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.render_bounds import PHASE_DONE, PHASE_ENTRY, ProgressCell
from hatchet_manifest.manifest.rendered import Limits, RenderedRun
from hatchet_manifest.manifest.values import Values

BATCH = 256  # runs per frame


@dataclass(frozen=True)
class RenderJob:
    manifests: list[LoadedManifest]
    values: Values
    limits: Limits
    schema_dir: Path | None
    reveal: bool


@dataclass(frozen=True)
class EntryRef:
    """What the parent knows of a compiled entry (Renderer.entries)."""

    manifest: LoadedManifest
    index: int
    count: int


def _problems(exc: ManifestError) -> list[tuple[Any, ...]]:
    return [(p.file, p.line, p.message, p.where, p.path) for p in exc.problems]


def _run_tuple(r: RenderedRun) -> tuple[Any, ...]:
    return (
        r.key,
        r.workflow_name,
        r.input,
        r.additional_metadata,
        r.priority,
        r.manifest,
        r.file,
        r.line,
        r.where,
        r.secret_input,
        r.secret_metadata,
        r.uses_secret,
        r.kind,
        r.trigger,
    )


def worker_main() -> None:
    """Entry point of a render worker (`python -m hatchet_manifest.manifest.render_worker`)."""
    inp, out, cell = worker_start(sys.argv[1:])
    with guarded(cell, out):
        _serve(inp, out, cell)
        out.close()


def _serve(inp: IO[bytes], out: IO[bytes], cell: ProgressCell) -> None:
    from hatchet_manifest.manifest.render import Renderer

    job: RenderJob = pickle.load(inp)
    renderer = Renderer(job.manifests, job.values, job.limits, job.schema_dir, job.reveal)
    numbers = {id(m): k for k, m in enumerate(job.manifests)}
    renderer.on_entry = lambda m, index, section: cell.set(PHASE_ENTRY, numbers[id(m)], index, section)
    try:
        count = renderer.prepare()
        entries = [(numbers[id(e.manifest)], e.index, e.count) for e in renderer.entries()]
        send_frame(out, b"P" + pickle.dumps((count, entries, renderer.overrides), pickle.HIGHEST_PROTOCOL))
        command = inp.read(1)
        if command == b"c":
            n = renderer.count()
            send_frame(out, b"E" + pickle.dumps((n, renderer.warnings)))
        elif command == b"r":
            batch: list[tuple[Any, ...]] = []
            n = 0
            try:
                for run in renderer.runs():
                    batch.append(_run_tuple(run))
                    if len(batch) == BATCH:
                        _send_runs(out, batch)
                        n += len(batch)
                        batch = []
            finally:  # the valid runs before the problems are sent too, as Renderer.runs yields them
                _send_runs(out, batch)
            send_frame(out, b"E" + pickle.dumps((n + len(batch), renderer.warnings)))
    except ManifestError as exc:
        send_frame(out, b"F" + pickle.dumps((_problems(exc), renderer.warnings)))
    except HatchetManifestError as exc:
        send_frame(out, b"C" + pickle.dumps((type(exc).__name__, str(exc), exc.exit_code)))
    cell.set(PHASE_DONE)


def _send_runs(out: IO[bytes], batch: list[tuple[Any, ...]]) -> None:
    if not batch:
        return
    try:
        payload = b"B" + marshal.dumps(batch)
    except ValueError:  # a value marshal does not take (a str subclass, e.g. Markup): pickle keeps its type
        payload = b"b" + pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
    send_frame(out, payload)
