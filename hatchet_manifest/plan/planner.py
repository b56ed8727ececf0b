"""Identity and digests of runs, and the plan: what `apply` would do against a baseline.

A baseline is what was applied before: the ledger of a target, or the same manifests at a git revision.
Plans stream: runs are compared in batches, and the keys seen are kept in a KeySet (constant memory) so
that what was removed from git can be listed at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hatchet_client.config import apply_namespace

from hatchet_manifest.manifest.keyset import KeyLog, KeySet
from hatchet_manifest.manifest.rendered import RenderedRun, canonical_json, json_digest

Action = Literal["create", "changed", "unchanged", "removed", "unknown"]
ACTIONS: tuple[Action, ...] = ("create", "changed", "unchanged", "removed", "unknown")
BATCH = 1000


def run_digest(run: RenderedRun, namespace: str = "", input_json: bytes | None = None) -> str:
    """sha256 of the canonical JSON of the namespaced workflow name, input and user metadata (secrets masked).

    `namespace` is normalised already (hatchet_client.config.normalize_namespace); `input_json`:
    canonical_json(run.input), when made already."""
    name = apply_namespace(run.workflow_name, namespace) if namespace else run.workflow_name
    if input_json is None:
        input_json = canonical_json(run.input)
    return json_digest(name, input_json, canonical_json(run.additional_metadata))


# Not frozen (see RenderedRun): built per known key, a million for a million-run re-plan. Never changed once built.
@dataclass(slots=True)
class Known:
    """What a baseline knows of a key."""

    key: str
    digest: str
    state: str  # "submitted", "pending", "failed", "unknown" (ledger) or "declared" (git base)
    run_id: str | None = None
    manifest: str = ""
    workflow_name: str | None = None
    input: dict[str, Any] | None = None
    additional_metadata: dict[str, str] | None = None


class RunIdentity(Protocol):
    """What the engine lookup needs of a run: a RenderedRun, or a parallel apply's lighter record."""

    @property
    def key(self) -> str: ...

    @property
    def manifest(self) -> str: ...

    @property
    def file(self) -> str: ...


class Fallback(Protocol):
    """Asked about the runs the baseline does not know (the engine lookup)."""

    def __call__(self, missing: Sequence[tuple[RunIdentity, str]]) -> dict[str, Known]:
        """Runs, with their digests -> what is known of those found, by key."""
        ...

    def finds_nothing(self, manifest: str) -> bool:
        """True when no run of `manifest` can be found (asking about its runs is then pointless)."""
        ...


class Baseline(Protocol):
    """What `diff` compares with."""

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]: ...

    def known(self, manifests: Sequence[str]) -> Iterator[Known]:
        """Everything recorded for these manifests (to find what was removed from git)."""
        ...


# Not frozen, for the same reason as Known.
@dataclass(slots=True)
class PlannedRun:
    action: Action
    key: str
    digest: str
    run: RenderedRun | None = None  # None for removed runs
    known: Known | None = None

    @property
    def run_id(self) -> str | None:
        return self.known.run_id if self.known else None

    def to_dict(self) -> dict[str, Any]:
        """The plan output shape: {key, action, workflow_name, input, additional_metadata, run_id?}."""
        if self.run is not None:
            out: dict[str, Any] = {
                "key": self.key,
                "action": self.action,
                "workflow_name": self.run.workflow_name,
                "input": self.run.input,
                "additional_metadata": self.run.additional_metadata,
            }
            if self.run.priority is not None:
                out["priority"] = self.run.priority
            out["manifest"] = self.run.manifest
        else:
            k = self.known
            out = {
                "key": self.key,
                "action": self.action,
                "workflow_name": k.workflow_name if k else None,
                "input": k.input if k else None,
                "additional_metadata": k.additional_metadata if k else None,
                "manifest": k.manifest if k else "",
            }
        out["digest"] = self.digest
        if self.run_id:
            out["run_id"] = self.run_id
        return out


def classify(digest: str, known: Known | None) -> Action:
    if known is None or known.state == "failed":  # a failed run was guaranteed not applied
        return "create"
    if known.state in ("pending", "unknown"):
        return "unknown"
    return "unchanged" if known.digest == digest else "changed"


class Plan:
    """Streams PlannedRun values; `summary` counts them as they pass."""

    def __init__(
        self,
        runs: Iterable[RenderedRun],
        baseline: Baseline,
        manifests: Sequence[str],
        namespace: str = "",
        fallback: Fallback | None = None,
    ) -> None:
        """`fallback` is asked about the runs the baseline does not know (the engine lookup)."""
        self._runs = runs
        self._baseline = baseline
        self._manifests = list(manifests)
        self._namespace = namespace
        self._fallback = fallback
        self.summary: Counter[str] = Counter({a: 0 for a in ACTIONS})
        self.creates: Counter[str] = Counter()  # manifest -> runs planned as create
        self.by_manifest: Counter[tuple[str, Action]] = Counter()  # (manifest, action) -> runs

    def __iter__(self) -> Iterator[PlannedRun]:
        seen = KeySet()
        try:
            batch: list[RenderedRun] = []
            for run in self._runs:
                batch.append(run)
                if len(batch) == BATCH:
                    yield from self._compare(batch, seen)
                    batch = []
            yield from self._compare(batch, seen)
            yield from self.removed(seen)
        finally:
            seen.close()

    def _compare(self, batch: list[RenderedRun], seen: KeySet) -> Iterator[PlannedRun]:
        if not batch:
            return
        seen.add_batch([r.key for r in batch])
        digests = [run_digest(run, self._namespace) for run in batch]
        known = self.known_of(batch, digests)
        for run, digest in zip(batch, digests, strict=True):
            k = known.get(run.key)
            action = self.count(classify(digest, k), run.manifest)
            yield PlannedRun(action, run.key, digest, run, k)

    @property
    def baseline(self) -> Baseline:
        return self._baseline

    @property
    def fallback(self) -> Fallback | None:
        return self._fallback

    def count(self, action: Action, manifest: str, n: int = 1) -> Action:
        """Count `n` runs of a manifest planned as `action` (summary, creates); returns the action."""
        self.summary[action] += n
        self.by_manifest[manifest, action] += n
        if action == "create":
            self.creates[manifest] += n
        return action

    def known_of(self, runs: Sequence[RunIdentity], digests: Sequence[str]) -> dict[str, Known]:
        """What the baseline (then the fallback, for the keys the baseline does not know) knows of a batch."""
        known = self._baseline.lookup([r.key for r in runs])
        if self._fallback is not None:
            missing = [(run, d) for run, d in zip(runs, digests, strict=True) if run.key not in known]
            if missing:
                known.update(self._fallback(missing))
        return known

    def removed(self, seen: KeySet | KeyLog) -> Iterator[PlannedRun]:
        """What the baseline knows for these manifests that is not in `seen` (the keys planned)."""
        pending: list[Known] = []
        for k in self._baseline.known(self._manifests):
            pending.append(k)
            if len(pending) == BATCH:
                yield from self._not_seen(pending, seen)
                pending = []
        yield from self._not_seen(pending, seen)

    def _not_seen(self, known: list[Known], seen: KeySet | KeyLog) -> Iterator[PlannedRun]:
        present = seen.contains_batch([k.key for k in known])
        for k, is_present in zip(known, present, strict=True):
            if not is_present and k.state != "failed":
                self.summary["removed"] += 1
                self.by_manifest[k.manifest, "removed"] += 1
                yield PlannedRun("removed", k.key, k.digest, None, k)


def summary_line(summary: Mapping[str, int]) -> str:
    """`Plan: 3 to create, 1 changed, ...` from counts by action (missing actions count 0)."""
    n = {a: summary.get(a, 0) for a in ACTIONS}
    return (
        f"Plan: {n['create']} to create, {n['changed']} changed, {n['unchanged']} unchanged, "
        f"{n['removed']} removed, {n['unknown']} unknown."
    )
