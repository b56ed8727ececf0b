"""Pass 1 of a large apply in worker processes: render, validate, digest and encode shards of the run stream
on several cores, then plan, select and spool them in the parent, in exactly the serial order.

Each worker is a fresh interpreter (`python -m hatchet_manifest.apply.shard_worker`, started like multiprocessing's spawn
start method: never a fork of a parent that may hold gRPC threads and an embedded engine). It gets its job
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

import contextlib
import fcntl
import itertools
import marshal
import os
import pickle
import signal
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from hatchet_client import RunEncoder
from hatchet_client.errors import RunValidationError

from hatchet_manifest.apply.executor import ApplyOptions, ApplyResult, wanted, wire_item
from hatchet_manifest.apply.spool import Spool
from hatchet_manifest.errors import ManifestError, Problem
from hatchet_manifest.manifest.keyset import KeyLog
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.render import SHARD_BLOCK, Renderer
from hatchet_manifest.manifest.rendered import Limits, canonical_json
from hatchet_manifest.manifest.values import Values
from hatchet_manifest.plan.planner import Action, Plan, classify, run_digest

DEFAULT_THRESHOLD = 50_000  # below this many runs, the serial path is faster (workers cost ~0.3 s to start)
THRESHOLD_ENV = "HATCHET_MANIFEST_PARALLEL_THRESHOLD"
_FRAME = struct.Struct("<I")
_PIPE_SIZE = 1 << 20


def auto_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


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


class Ref(NamedTuple):
    """What the engine lookup needs of a run (plan.RunIdentity)."""

    key: str
    manifest: str
    file: str


# -- the worker -----------------------------------------------------------------------------------------------


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    out.write(_FRAME.pack(len(data)) + data)


def work(job: Job, out: IO[bytes]) -> None:
    """Render one shard and send its blocks, then its problems."""
    renderer = Renderer(job.manifests, Values(extra=job.overrides), job.limits, job.schema_dir, reveal_secrets=True)
    encoder = RunEncoder(job.encoder_namespace, job.max_send)
    namespace, stamp = job.namespace, job.stamp
    current = -1
    keys: list[str] = []
    digests: list[str] = []
    entries: list[int] = []
    items: list[bytes] = []
    errors: list[tuple[int, str, str]] = []  # (position in the block, field, problem): refused by the encoder

    def flush() -> None:
        _send(out, ("B", current, keys, digests, entries, [len(i) for i in items], b"".join(items), errors))

    for entry_no, ordinal, run in renderer.stream(job.shard):
        block = ordinal // SHARD_BLOCK
        if block != current:
            if keys:
                flush()
                keys, digests, entries, items, errors = [], [], [], [], []
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
    if keys:
        flush()
    problems = [
        (ordinal, p.file, p.line, p.message, p.where, p.path)
        for ordinal, p in zip(renderer.problem_ordinals, renderer.problems, strict=True)
    ]
    _send(out, ("E", renderer.problem_count, problems))
    out.flush()


def main() -> None:
    """Entry point of a worker process: the job on stdin, messages on the original stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the message stream
    try:
        job = pickle.load(sys.stdin.buffer)
        work(job, out)
        out.close()
    except (BrokenPipeError, EOFError):  # the parent is gone (killed, or it stopped us): nothing to report
        os._exit(1)


# -- the parent -----------------------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A worker process failed (an internal error: its traceback is on stderr)."""


class _Worker:
    def __init__(self) -> None:
        """Start the process; it imports what it needs, then waits for its job (see `start`)."""
        env = dict(os.environ)
        roots = {str(Path(m.__file__).resolve().parent.parent) for m in _packages()}
        env["PYTHONPATH"] = os.pathsep.join([*sorted(roots), *filter(None, [env.get("PYTHONPATH")])])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hatchet_manifest.apply.shard_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        with contextlib.suppress(OSError, AttributeError):  # a bigger pipe lets the worker run ahead
            fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self.stdout = self.proc.stdout

    def start(self, job: Job) -> None:
        assert self.proc.stdin is not None
        try:
            pickle.dump(job, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the worker died at once: reported when its messages are read

    def read(self) -> tuple[Any, ...]:
        header = self.stdout.read(_FRAME.size)
        if len(header) < _FRAME.size:
            code = self.proc.wait()
            raise WorkerError(f"a render worker stopped unexpectedly (exit code {code}; see its error above)")
        (size,) = _FRAME.unpack(header)
        message: tuple[Any, ...] = marshal.loads(self.stdout.read(size))
        return message

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stdout.close()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


class Workers:
    """Render worker processes, started early so that their start (imports: ~0.3 s) overlaps the parent's
    setup (ledger, engine connection, lock); `spool_parallel` gives them their jobs. Leaving the context stops
    any that still run."""

    def __init__(self, n: int) -> None:
        self.procs: list[_Worker] = []
        try:
            for _ in range(n):
                self.procs.append(_Worker())
        except BaseException:
            self.stop()
            raise

    def __len__(self) -> int:
        return len(self.procs)

    def stop(self) -> None:
        for w in self.procs:
            w.stop()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _packages() -> list[Any]:
    import hatchet_client

    import hatchet_manifest

    return [hatchet_client, hatchet_manifest]


class _Merge:
    """The workers' blocks in block order (each worker's come in order, and the shards are disjoint); collects
    the problems they report at the end: (ordinal, sequence, problem), and their number."""

    def __init__(self, workers: list[_Worker]) -> None:
        self.workers = workers
        self.problems: list[tuple[int, int, Problem]] = []
        self.problem_count = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        heads: list[tuple[Any, ...] | None] = [w.read() for w in self.workers]
        while True:
            best = -1
            for i, head in enumerate(heads):
                if head is None:
                    continue
                if head[0] == "E":
                    self.problem_count += head[1]
                    self.problems.extend((o, len(self.problems), Problem(*p)) for o, *p in head[2])
                    heads[i] = None
                elif best < 0 or head[1] < heads[best][1]:  # type: ignore[index]
                    best = i
            if best < 0:
                return
            block = heads[best]
            assert block is not None
            yield block
            heads[best] = self.workers[best].read()


def spool_parallel(
    renderer: Renderer,
    plan: Plan,
    spool: Spool,
    options: ApplyOptions,
    result: ApplyResult,
    workers: Workers,
    namespace: str,
) -> int:
    """Pass 1 in the `workers` processes (see the module docstring): plan, count into `result` and spool the runs to
    send; returns their number. Raises ManifestError (every problem of every shard) or RunValidationError (a
    run to send that the encoder refuses), having sent nothing."""
    renderer.prepare()
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
        merge = _Merge(procs)
        names = {n: (e.manifest.name, e.manifest.file) for n, e in enumerate(renderer.entries())}
        for _, _, keys, digests, entries, lengths, blob, errors in merge:
            if len(set(keys)) < len(keys):  # a key repeated within the block: planning it twice would be wrong
                raise _Repeated
            seen.add_batch(keys)
            _plan_block(plan, spool, options, result, names, keys, digests, entries, lengths, blob, errors)
        for w in procs:
            if w.proc.wait() != 0:
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


def _serial_problems(renderer: Renderer) -> ManifestError:
    """Every problem of the manifests, duplicate keys included, as the serial renderer reports them."""
    again = Renderer(renderer.manifests, renderer.values, renderer.limits, renderer.schemas.schema_dir, renderer.reveal)
    try:
        for _ in again.runs():
            pass
    except ManifestError as exc:
        return exc
    raise WorkerError("render workers found repeated keys that a serial render does not find")


def _plan_block(
    plan: Plan,
    spool: Spool,
    options: ApplyOptions,
    result: ApplyResult,
    names: dict[int, tuple[str, str]],
    keys: list[str],
    digests: list[str],
    entries: list[int],
    lengths: list[int],
    blob: bytes,
    errors: list[tuple[int, str, str]],
) -> None:
    known = plan.baseline.lookup(keys)
    fallback = plan.fallback
    if fallback is not None:
        unknown = [i for i, key in enumerate(keys) if key not in known]
        silent = {e for e in set(entries) if fallback.finds_nothing(names[e][0])} if unknown else set()
        missing = [(Ref(keys[i], *names[entries[i]]), digests[i]) for i in unknown if entries[i] not in silent]
        if missing:
            known.update(fallback(missing))
    if not known:  # nothing of the block is known: all of it is created (a first apply), without a loop per run
        if errors:
            position, field, problem = errors[0]
            raise RunValidationError(spool.written + position, field, problem, keys[position])
        for entry, n in Counter(entries).items():
            plan.count("create", names[entry][0], n)
        result.counts["create"] = result.counts.get("create", 0) + len(keys)
        created = [(k, d, *names[e], False) for k, d, e in zip(keys, digests, entries, strict=True)]
        spool.write_encoded(created, lengths, blob)
        return
    bad = {e[0]: e for e in errors}
    tags: list[tuple[str, str, str, str, bool]] = []
    chosen: list[int] = []
    counted: dict[tuple[Action, int], int] = {}  # (action, entry) -> runs
    get = known.get
    for i in range(len(keys)):
        k = get(keys[i])
        action = classify(digests[i], k)
        counted[action, entries[i]] = counted.get((action, entries[i]), 0) + 1
        if action == "create" or (action != "unchanged" and wanted(action, k, options, result, count=False)):
            if bad and i in bad:
                _, field, problem = bad[i]
                raise RunValidationError(spool.written + len(tags), field, problem, keys[i])
            manifest, file = names[entries[i]]
            tags.append((keys[i], digests[i], manifest, file, action == "changed"))
            chosen.append(i)
    for (action, entry), n in counted.items():
        plan.count(action, names[entry][0], n)
        result.counts[action] = result.counts.get(action, 0) + n
    if len(chosen) == len(keys):
        spool.write_encoded(tags, lengths, blob)
    elif chosen:
        offsets = [0, *itertools.accumulate(lengths)]
        spool.write_encoded(
            tags, [lengths[i] for i in chosen], b"".join(blob[offsets[i] : offsets[i + 1]] for i in chosen)
        )
