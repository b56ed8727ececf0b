"""Manifests unchanged since they were applied: planned without being rendered, while the ledger proves it.

An apply that leaves a manifest's rows exactly as the manifest renders (every run submitted with its digest,
nothing removed, nothing skipped, no run of it recorded under another manifest, the apply clean) records its
fingerprint (`manifest.fingerprint`: everything the rendering read) and its number of runs in the ledger (`seal`,
`Watch`). A later `diff` or `apply` skips a manifest whose record still holds (no write to its rows since, by any
process: `ledger.records`) and whose fingerprint is the record's (`Shortcut.decide`): its runs are all unchanged,
and the plan counts them without listing them. Anything that cannot be proven renders: a missing or stale record,
an input that changed or cannot be read, a render that may differ between processes.

A key rendered now that belongs to a skipped manifest is a key declared twice (the skipped manifest still renders
it): `Guarded` says so, as the full render would (with less detail on where).
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from hatchet_manifest.errors import ManifestError, Problem
from hatchet_manifest.ledger import Ledger, Target
from hatchet_manifest.ledger.values import ManifestRecord
from hatchet_manifest.manifest.fingerprint import Detail, Fingerprints, scan
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.plan.planner import Baseline, Known, Plan, PlannedRun
from hatchet_manifest.scrub import scrub


@dataclass
class Unchanged:
    """The manifests a command skips, unchanged since they were applied, with their runs (in load order)."""

    runs: dict[str, int] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # every manifest loaded -> its place (where plans list it)
    declared: int = 0  # the runs their entries declare (for --max-runs)

    @property
    def total(self) -> int:
        return sum(self.runs.values())

    def note(self) -> str | None:
        """What to tell the user (None when nothing was skipped)."""
        if not self.runs:
            return None
        n = len(self.runs)
        return (
            f"{n} manifest{'s' if n != 1 else ''} unchanged since applied ({self.total} runs, not rendered again; "
            "--refresh renders and compares every manifest)"
        )


class Shortcut:
    """One command's manifests: their fingerprints (the inputs they share read now, before anything renders) and
    what the ledger recorded of them."""

    def __init__(self, manifests: Sequence[LoadedManifest], fingerprints: Fingerprints) -> None:
        self.manifests = list(manifests)
        self.fingerprints = fingerprints

    def decide(self, ledger: Ledger, target: Target, allowed: bool = True) -> tuple[Unchanged, list[LoadedManifest]]:
        """The manifests whose record holds and whose fingerprint is the record's, and the others (to render).
        `allowed` False: none is skipped."""
        unchanged = Unchanged(order={m.name: i for i, m in enumerate(self.manifests)})
        records = ledger.records(target, [m.name for m in self.manifests]) if allowed else {}
        rest = []
        for m in self.manifests:
            record = records.get(m.name)
            detail = Detail.from_json(record.detail) if record is not None else None
            if record is None or detail is None or not self._matches(m, record, detail):
                rest.append(m)
                continue
            unchanged.runs[m.name] = record.runs
            unchanged.declared += detail.declared
        return unchanged, rest

    def _matches(self, m: LoadedManifest, record: ManifestRecord, detail: Detail) -> bool:
        try:
            now = self.fingerprints.of(m, detail, record.salt)
        except ValueError:  # a salt that is not hex: not a record this version made
            return False
        return now is not None and hmac.compare_digest(now, record.fingerprint)

    def watch(
        self, ledger: Ledger, target: Target, rendered: Sequence[LoadedManifest], declared: Mapping[str, int]
    ) -> Watch:
        """What to learn of the manifests an apply renders (call it before planning: it reads their generations)."""
        return Watch(self, ledger, target, rendered, declared)


def check_total(unchanged: Unchanged, rendered: int, max_runs: int) -> None:
    """The full render's --max-runs check, over the manifests skipped too (`rendered`: what the others declare)."""
    total = unchanged.declared + rendered
    if unchanged.runs and total > max_runs:
        raise ManifestError([Problem("", None, f"the manifests declare {total} runs, more than --max-runs {max_runs}")])


class Guarded:
    """A baseline that refuses a key recorded for a skipped manifest: rendered now by another manifest, it would be
    a duplicate key in the full render (the skipped manifest still declares it)."""

    def __init__(self, inner: Baseline, skipped: Collection[str]) -> None:
        self.inner = inner
        self.skipped = frozenset(skipped)

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]:
        known = self.inner.lookup(keys)
        if self.skipped:
            for k in known.values():
                if k.manifest in self.skipped:
                    raise ManifestError(
                        [
                            Problem(
                                "",
                                None,
                                f"duplicate key {k.key!r}: manifest {k.manifest!r} declares it too (unchanged since "
                                "applied, it was not rendered again: --refresh renders both and says where)",
                            )
                        ]
                    )
        return known

    def known(self, manifests: Sequence[str]) -> Iterator[Known]:
        return self.inner.known(manifests)


def guarded(baseline: Baseline, unchanged: Unchanged) -> Baseline:
    return Guarded(baseline, unchanged.runs) if unchanged.runs else baseline


class Watch:
    """An apply's view of the manifests it renders: the workflows their runs trigger (whose schemas validated them)
    and the manifests with a run found unchanged under another manifest's record; then `seal`."""

    def __init__(
        self,
        shortcut: Shortcut,
        ledger: Ledger,
        target: Target,
        rendered: Sequence[LoadedManifest],
        declared: Mapping[str, int],
    ) -> None:
        self.shortcut = shortcut
        self.ledger = ledger
        self.target = target
        self.rendered = list(rendered)
        self.declared = dict(declared)
        self.started = time.time_ns()  # files read after the render must not have changed since
        self.since = ledger.generations(target, [m.name for m in self.rendered])
        self.workflows: dict[str, set[str]] = {}
        self.foreign: set[str] = set()

    def tap(self, planned: Iterable[PlannedRun]) -> Iterator[PlannedRun]:
        """The planned runs, watched as they pass (the serial apply)."""
        workflows = self.workflows
        manifest = workflow = None
        seen: set[str] = set()
        for p in planned:
            r = p.run
            if r is not None:
                if r.manifest != manifest:
                    manifest, workflow = r.manifest, None
                    seen = workflows.setdefault(manifest, set())
                if r.workflow_name != workflow:
                    workflow = r.workflow_name
                    seen.add(workflow)  # its schema validated the run
                k = p.known
                if k is not None and k.manifest != manifest and p.action == "unchanged":
                    self.foreign.add(manifest)
            yield p

    def block_workflows(self, pairs: Iterable[tuple[str, str]]) -> None:
        """A parallel apply's block: the (manifest, workflow) pairs of its runs."""
        for manifest, workflow in pairs:
            self.workflows.setdefault(manifest, set()).add(workflow)

    def block_known(
        self, keys: Sequence[str], digests: Sequence[str], manifests: Sequence[str], known: Mapping[str, Known]
    ) -> None:
        """A parallel apply's block: its runs' keys, digests and manifests, and what the baseline knew of them."""
        for key, digest, manifest in zip(keys, digests, manifests, strict=True):
            k = known.get(key)
            if k is not None and k.manifest != manifest and k.state == "submitted" and k.digest == digest:
                self.foreign.add(manifest)  # planned unchanged, on another manifest's row

    def seal(self, plan: Plan, clean: bool, resubmit_changed: bool, resubmit_unknown: bool) -> list[str]:
        """Record the manifests the apply left exactly as they render (`clean`: every run it meant to send is
        submitted, nothing interrupted); returns their names."""
        if not clean:
            return []
        salt = os.urandom(16).hex()
        sent = (
            {"create", "unchanged"}
            | ({"changed"} if resubmit_changed else set())
            | ({"unknown"} if resubmit_unknown else set())
        )  # what the rows are as the manifest renders after a clean apply (anything else was left as it was)
        actions: dict[str, dict[str, int]] = {}
        for (manifest, action), runs in plan.by_manifest.items():
            actions.setdefault(manifest, {})[action] = runs
        records = []
        for m in self.rendered:
            planned = actions.get(m.name, {})
            if any(count and action not in sent for action, count in planned.items()):
                continue
            found = scan(m)
            if m.name in self.foreign or not found.deterministic:
                continue
            if m.model.crons or m.model.schedules:  # desired state the engine holds (anyone may pause or delete
                continue  # them there): compared with the engine on every plan, never skipped
            workflows = tuple(sorted(self.workflows.get(m.name, ())))
            detail = Detail(found.env, workflows, found.schemas, self.declared.get(m.name, 0))
            text = detail.to_json()
            fingerprint = self.shortcut.fingerprints.of(m, detail, salt, unchanged_since=self.started)
            if fingerprint is None or scrub(text) != text:  # never a secret's value in the ledger
                continue
            records.append(ManifestRecord(m.name, fingerprint, sum(planned.values()), salt, text))
        return self.ledger.seal(self.target, records, self.since)
