"""The commands' side of skipping the manifests unchanged since they were applied (`plan/unchanged.py`): deciding
against the target's ledger, narrowing the renderer to the other manifests, saying so on stderr, and what `apply`
needs to record the manifests it leaves unchanged."""

from __future__ import annotations

from collections import Counter

import click

from hatchet_manifest.ledger import Ledger, Target
from hatchet_manifest.manifest.fingerprint import Fingerprints
from hatchet_manifest.manifest.sandbox import BoundedRenderer
from hatchet_manifest.plan.unchanged import Shortcut, Unchanged, Watch, check_total


def skip_unchanged(
    renderer: BoundedRenderer, ledger: Ledger, target: Target, namespace: str, *, skip: bool, seal: bool
) -> tuple[Shortcut | None, Unchanged]:
    """Narrow `renderer` (not started yet) to the manifests that must render, when `skip`; prepare it (every
    problem of those is raised here). `seal`: the fingerprints are wanted after the render (apply), so the inputs
    they share are read now, before it."""
    shortcut = None
    unchanged = Unchanged()
    if skip or seal:
        limits = renderer.limits
        fingerprints = Fingerprints(
            renderer.values, renderer.schemas.schema_dir, limits.max_runs, limits.access, namespace
        )
        shortcut = Shortcut(renderer.manifests, fingerprints)
        unchanged, rest = shortcut.decide(ledger, target, skip)
        if unchanged.runs:
            renderer.keep(rest)
    check_total(unchanged, renderer.prepare(), renderer.limits.max_runs)
    note = unchanged.note()
    if note is not None:
        click.echo(f"note: {note}", err=True)
    return shortcut, unchanged


def watch_apply(shortcut: Shortcut | None, renderer: BoundedRenderer, ledger: Ledger, target: Target) -> Watch | None:
    """What an apply watches to record the manifests it renders (before planning: their generations are read)."""
    if shortcut is None:
        return None
    declared: Counter[str] = Counter()
    for entry in renderer.entries():
        declared[entry.manifest.name] += entry.count
    return shortcut.watch(ledger, target, renderer.manifests, declared)
