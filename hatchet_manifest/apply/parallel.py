"""Pass 1 of a large apply in worker processes: render, validate, digest and encode shards of the run stream
on several cores, then plan, select and spool them in the parent, in exactly the serial order.

Each worker is a fresh interpreter (`python -P -m hatchet_manifest.apply.shard_worker`, started like
multiprocessing's spawn start method: never a fork of a parent that may hold gRPC threads and an embedded engine),
bounded in memory and time as every render is (`sandbox.BoundedProcess`: --render-memory, --render-timeout; a
bound's error names the manifest and entry the worker was rendering). It gets its job
(the parent's loaded manifests, the merged values, limits, its shard) pickled on stdin and renders
`Renderer.stream(shard=(k, n))`: the items of the blocks `ordinal // SHARD_BLOCK` equal to k modulo n. Per
block it sends on its stdout pipe (private to the two processes; secrets travel only there and into the
spool's 0600 file) the runs' keys, digests, entries and encoded wire bytes (stamped, real secrets), then its
problems at the end. The parent merges the blocks by number, which reproduces the serial order, plans each
block against the ledger and the engine lookup, applies `select`'s rules and writes the selected runs to the
spool. Problems from every shard are reported together, in stream order, and nothing is sent if there is any.

Keys are checked unique once all are in (a KeyLog: 8 bytes a key and no per-key work until a final sort);
nothing is sent before then anyway. When keys repeat, the manifests are rendered again serially for the
error, which then names every repeated key where the serial renderer would, among the other problems.
"""

from __future__ import annotations

import array
import os
from collections.abc import Callable

from hatchet_manifest.apply.blocks import plan_block
from hatchet_manifest.apply.executor import ApplyOptions, ApplyResult, wanted
from hatchet_manifest.apply.pool import Merge, WorkerError, Workers
from hatchet_manifest.apply.shards import Job
from hatchet_manifest.apply.spool import Spool
from hatchet_manifest.errors import ManifestError
from hatchet_manifest.manifest.keyset import KeyLog
from hatchet_manifest.manifest.sandbox import Rendering
from hatchet_manifest.plan.names import Site, WorkflowNames
from hatchet_manifest.plan.planner import Plan
from hatchet_manifest.plan.unchanged import Watch

__all__ = ["DEFAULT_THRESHOLD", "THRESHOLD_ENV", "WorkerError", "Workers", "auto_workers", "spool_parallel"]

DEFAULT_THRESHOLD = 50_000  # below this many runs, the serial path is faster (workers cost ~0.3 s to start)
THRESHOLD_ENV = "HATCHET_MANIFEST_PARALLEL_THRESHOLD"


def auto_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def spool_parallel(
    renderer: Rendering,
    plan: Plan,
    spool: Spool,
    options: ApplyOptions,
    result: ApplyResult,
    workers: Workers,
    namespace: str,
    sent_workflows: WorkflowNames | None = None,
    on_checked: Callable[[int], None] | None = None,
    watch: Watch | None = None,
) -> int:
    """`on_checked(n)`: n more runs rendered, validated and planned (after each block); `watch`: told of each block
    (what is recorded of the manifests after the apply). Pass 1 in the `workers` processes (see the module docstring): plan, count into `result` and spool the runs to
    send (their workflow names into `sent_workflows`); returns their number. Raises ManifestError (every problem of every shard) or RunValidationError (a
    run to send that the encoder refuses), having sent nothing."""
    renderer.prepare()
    if sent_workflows is None:
        sent_workflows = WorkflowNames()
    encoder = spool.encoder
    overrides = renderer.overrides
    base = Job(
        renderer.manifests,
        overrides,
        renderer.limits,
        renderer.schemas.schema_dir,
        (0, len(workers)),
        namespace,
        encoder.namespace,
        encoder.max_send,
        options.stamp,
    )
    procs = workers.procs
    seen = KeyLog()
    try:
        for k, w in enumerate(procs):
            w.start(Job(**{**base.__dict__, "shard": (k, len(procs))}))
        merge = Merge(procs)
        compiled = renderer.entries()
        names = {n: (e.manifest.name, e.manifest.file) for n, e in enumerate(compiled)}
        sites = {
            n: Site(e.manifest.file, e.manifest.doc.line_of(("runs", e.index)), f"runs[{e.index}]")
            for n, e in enumerate(compiled)
        }
        for _, _, keys, digests, entries, lengths, blob, errors, block_workflows, workflow_of in merge:
            if len(set(keys)) < len(keys):  # a key repeated within the block: planning it twice would be wrong
                raise _Repeated
            seen.add_batch(keys)
            chosen = plan_block(
                plan, spool, options, result, names, keys, digests, entries, lengths, blob, errors, watch
            )
            numbers = array.array("I")
            numbers.frombytes(workflow_of)
            if watch is not None:
                pairs = {(names[e][0], block_workflows[w]) for e, w in set(zip(entries, numbers, strict=True))}
                watch.block_workflows(pairs)
            for i in range(len(keys)) if chosen is None else chosen:  # the workflows of the runs to send
                sent_workflows.add_site(block_workflows[numbers[i]], sites[entries[i]])
            if on_checked is not None:
                on_checked(len(keys))
        for w in procs:
            if w.returncode() != 0:
                raise WorkerError(f"a render worker failed (exit code {w.proc.returncode}; see its error above)")
        if seen.duplicates():
            raise _Repeated
        if merge.problem_count:
            in_order = [p for _, _, p in sorted(merge.problems, key=lambda t: (t[0], t[1]))]
            raise ManifestError.of(in_order[: renderer.limits.max_problems], merge.problem_count)
        for p in plan.removed(seen):
            wanted(p.action, p.known, options, result)
        spool.flush()
    except _Repeated:
        workers.stop()
        raise _serial_problems(renderer) from None
    finally:
        seen.close()
        workers.stop()
    return spool.count


class _Repeated(Exception):
    """Keys repeat: the serial renderer says where (rare: an error, so its cost does not matter)."""


def _serial_problems(renderer: Rendering) -> ManifestError:
    """Every problem of the manifests, duplicate keys included, as the serial renderer reports them (rendered
    again as `renderer` renders: in a bounded worker for the commands)."""
    again = renderer.fresh()
    try:
        for _ in again.runs():
            pass
    except ManifestError as exc:
        return exc
    raise WorkerError("render workers found repeated keys that a serial render does not find")
