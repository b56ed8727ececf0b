"""Identity and digests of runs, and the plan: what `apply` would do against a baseline.

A baseline is what was applied before: the ledger of a target, or the same manifests at a git revision.
Plans stream: runs are compared in batches, and the keys seen are kept in a KeySet (constant memory) so
that what was removed from git can be listed at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from hatchet_client import cronexpr
from hatchet_client.config import apply_namespace

from hatchet_manifest.manifest.keyset import KeyLog, KeySet
from hatchet_manifest.manifest.rendered import KEY_PREFIXES, RenderedRun, canonical_json, json_digest, kind_of_key
from hatchet_manifest.plan.trigger_fields import changes

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
    if run.trigger is not None:
        return trigger_digest(name, input_json, run.additional_metadata, run.kind, run.trigger, run.priority)
    return json_digest(name, input_json, canonical_json(run.additional_metadata))


def trigger_digest(
    name: str, input_json: bytes, metadata: Mapping[str, str], kind: str, trigger: Mapping[str, Any], priority: Any
) -> str:
    """A trigger's digest: its (namespaced) workflow or event key, input, metadata, and what makes it the trigger
    it is (its own fields, but `allow_past`, which says how to create it, and its priority)."""
    own = {k: v for k, v in trigger.items() if k != "allow_past"}
    extra = canonical_json({"metadata": dict(metadata), "kind": kind, "trigger": own, "priority": priority})
    return json_digest(name, input_json, extra)


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
    trigger: dict[str, Any] | None = None  # a trigger's own fields, where the engine (or the git base) says them
    priority: int | None = None


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
    changes: tuple[str, ...] = ()  # a changed trigger: the fields that differ, where known
    held: tuple[Known, ...] = ()  # a trigger: every one the engine holds under its key

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
        kind = kind_of_key(self.key)
        if kind != "run":
            return _trigger_record(out, kind, self)
        if self.run_id:
            out["run_id"] = self.run_id
        return out


class TriggerSource(Protocol):
    """The engine's account of crons, schedules and events (plan/triggers.py), asked as the plan goes."""

    def plan(self, run: RenderedRun, digest: str, known: Known | None) -> PlannedRun | None:
        """The planned trigger, from what the engine holds (None: plan it from `known` alone)."""
        ...

    def removed(self, known: Known) -> Known:
        """A trigger recorded but declared no more, with what the engine holds of it."""
        ...

    def held_keys(self, manifests: Sequence[str]) -> list[Known]:
        """Every trigger the engine holds for these manifests (to find those declared nowhere)."""
        ...


def classify_trigger(run: RenderedRun, digest: str, known: Known | None, namespace: str = "") -> Action:
    """A trigger planned from a baseline alone: by its fields where the baseline says them (the git base), else
    by digest (the ledger)."""
    if known is not None and known.trigger is not None and known.state == "declared":
        return "changed" if changes(run, known, namespace) else "unchanged"
    return classify(digest, known)


def _trigger_record(out: dict[str, Any], kind: str, p: PlannedRun) -> dict[str, Any]:
    """A planned trigger's record: the run's fields, then its kind and own fields, what changed, its engine id(s),
    and a cron's next three firing times."""
    own = p.run.trigger if p.run is not None else p.known.trigger if p.known is not None else None
    out = {"key": out.pop("key"), "action": out.pop("action"), "kind": kind, **(own or {}), **out}
    if kind == "event":  # an event names no workflow
        name = out.pop("workflow_name", None)
        out["event_key"] = own.get("event_key", name) if own else name
        out["payload"] = out.pop("input", None)
    if p.changes:
        out["changes"] = list(p.changes)
    if p.run_id:
        out["id"] = p.run_id
    if len(p.held) > 1:
        out["ids"] = [k.run_id for k in p.held]
    if kind == "cron" and own is not None and own.get("enabled", True) and p.action != "removed":
        out["next"] = next_firings(str(own.get("expression", "")))
    return out


def next_firings(expression: str, n: int = 3, now: datetime | None = None) -> list[str]:
    """The next `n` firing times of a cron expression, UTC ([] when it cannot be read)."""
    try:
        times = cronexpr.parse(expression).next_times(now or datetime.now(UTC), n)
    except cronexpr.CronExpressionError:
        return []
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]


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
        triggers: TriggerSource | None = None,
    ) -> None:
        """`fallback` is asked about the runs the baseline does not know (the engine lookup); `triggers` about the
        crons, schedules and events (plan/triggers.py: the engine's account of them comes first)."""
        self._runs = runs
        self._baseline = baseline
        self._manifests = list(manifests)
        self._namespace = namespace
        self._fallback = fallback
        self._triggers = triggers
        self.trigger_manifests: set[str] = set()  # manifests with triggers declared or recorded
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
            if run.trigger is not None:
                self.trigger_manifests.add(run.manifest)
                planned = self._triggers.plan(run, digest, k) if self._triggers is not None else None
                if planned is None:
                    action = classify_trigger(run, digest, k, self._namespace)
                    fields = () if k is None or k.trigger is None else tuple(changes(run, k, self._namespace))
                    planned = PlannedRun(action, run.key, digest, run, k, fields if action == "changed" else ())
                self.count(planned.action, run.manifest)
                yield planned
                continue
            action = self.count(classify(digest, k), run.manifest)
            yield PlannedRun(action, run.key, digest, run, k)

    @property
    def baseline(self) -> Baseline:
        return self._baseline

    @property
    def fallback(self) -> Fallback | None:
        return self._fallback

    @property
    def triggers(self) -> TriggerSource | None:
        return self._triggers

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
            missing = [
                (run, d)
                for run, d in zip(runs, digests, strict=True)
                if run.key not in known and not run.key.startswith(KEY_PREFIXES)  # triggers: TriggerSource
            ]
            if missing:
                known.update(self._fallback(missing))
        return known

    def removed(self, seen: KeySet | KeyLog) -> Iterator[PlannedRun]:
        """What the baseline knows for these manifests that is not in `seen` (the keys planned)."""
        pending: list[Known] = []
        removed: set[str] = set()  # trigger keys found removed (few)
        for k in self._baseline.known(self._manifests):
            pending.append(k)
            if len(pending) == BATCH:
                yield from self._not_seen(pending, seen, removed)
                pending = []
        yield from self._not_seen(pending, seen, removed)
        if self._triggers is not None:  # held by the engine, recorded nowhere, declared no more: a crash's orphans
            orphans = [k for k in self._triggers.held_keys(sorted(self.trigger_manifests)) if k.key not in removed]
            for start in range(0, len(orphans), BATCH):
                yield from self._not_seen(orphans[start : start + BATCH], seen, removed)

    def _not_seen(self, known: list[Known], seen: KeySet | KeyLog, removed: set[str]) -> Iterator[PlannedRun]:
        present = seen.contains_batch([k.key for k in known])
        for k, is_present in zip(known, present, strict=True):
            if not is_present and k.state != "failed":
                if k.key.startswith(KEY_PREFIXES):
                    removed.add(k.key)
                    self.trigger_manifests.add(k.manifest)
                    if self._triggers is not None:
                        k = self._triggers.removed(k)
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
