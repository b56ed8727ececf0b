"""hatchet-manifest: launch Hatchet workflow runs declared in YAML manifests.

Library API (the CLI is a thin layer over it)::

    import hatchet_manifest as hm
    manifests = hm.load(["manifests/"])
    for run in hm.render(manifests, hm.Values(set=["count=5"])):
        print(run.key, run.workflow_run())
"""

from hatchet_manifest.errors import ConfigError, HatchetManifestError, LedgerError, ManifestError, Problem
from hatchet_manifest.loader import LoadedManifest, load
from hatchet_manifest.render import Limits, RenderedRun, Renderer, render
from hatchet_manifest.selector import Selector
from hatchet_manifest.values import Values

__all__ = [
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
]
