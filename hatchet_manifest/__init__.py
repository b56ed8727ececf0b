"""hatchet-manifest: launch Hatchet workflow runs declared in YAML manifests.

Library API (the CLI is a thin layer over it)::

    import hatchet_manifest as hm
    manifests = hm.load(["manifests/"])
    for run in hm.render(manifests, hm.Values(set=["count=5"])):
        print(run.key, run.workflow_run())

Planning and applying (`Plan`, `Executor`, `open_ledger`, `connect`) are loaded on first use, so that
rendering never pays for the gRPC client.
"""

from typing import Any

from hatchet_manifest.errors import ConfigError, HatchetManifestError, LedgerError, ManifestError, Problem
from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.loader import LoadedManifest, load
from hatchet_manifest.manifest.render import Renderer, render
from hatchet_manifest.manifest.rendered import Limits, RenderedRun
from hatchet_manifest.manifest.selector import Selector
from hatchet_manifest.manifest.values import Values

_LAZY = {
    "Plan": "hatchet_manifest.plan.planner",
    "PlannedRun": "hatchet_manifest.plan.planner",
    "run_digest": "hatchet_manifest.plan.planner",
    "Executor": "hatchet_manifest.apply.executor",
    "ApplyOptions": "hatchet_manifest.apply.executor",
    "ApplyResult": "hatchet_manifest.apply.executor",
    "select": "hatchet_manifest.apply.executor",
    "LedgerBaseline": "hatchet_manifest.plan.baseline",
    "open_ledger": "hatchet_manifest.ledger",
    "Target": "hatchet_manifest.ledger",
    "connect": "hatchet_manifest.plan.target",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hatchet_manifest' has no attribute {name!r}")


__all__ = [
    "Access",
    "ConfigError",
    "HatchetManifestError",
    "LedgerError",
    "Limits",
    "LoadedManifest",
    "ManifestError",
    "Problem",
    "RenderedRun",
    "Renderer",
    "Selector",
    "Values",
    "load",
    "render",
    *_LAZY,
]
