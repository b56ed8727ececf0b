"""Preflight: every workflow an apply will trigger must exist in the target tenant.

Hatchet's bulk trigger builds runs only for the workflow names it knows and still answers a run id for every item,
so the runs of a misspelt or undeployed workflow would vanish while the ledger records them as submitted. Before
anything is sent, the names of the runs to send are checked against the engine's workflow listing (compared
exactly, namespace applied); a missing name is a located problem with a hint at the closest known name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from hatchet_client.errors import HatchetClientError

from hatchet_manifest.errors import ConfigError, ManifestError, Problem
from hatchet_manifest.plan.names import WorkflowNames
from hatchet_manifest.plan.target import Connection

MAX_HINT_NAMES = 10_000  # workflows read for "did you mean" hints (only when a name is missing)


@dataclass(frozen=True)
class Preflight:
    """What the engine said about the names: `note` when nothing could be checked (recorder mode)."""

    checked: int
    note: str | None = None


def check(conn: Connection, names: WorkflowNames) -> Preflight:
    """Raise ManifestError naming every run whose workflow the target does not have; the engine is asked once."""
    if not names.counts:
        return Preflight(0)
    hatchet = conn.hatchet
    try:
        result = hatchet.check_workflows(names.counts)
        if result.recorder:
            return Preflight(
                0,
                "the embedded engine knows no workflow (no worker registered one, none declared with "
                "`engine serve --workflow NAME`): it records runs of any name, and workflow names were not checked",
            )
        if result.ok:
            return Preflight(len(result.found))
        known = [] if result.listed_none else _known_names(conn)
    except HatchetClientError as exc:
        raise ConfigError(
            f"could not check the workflow names in the engine: {exc} "
            "(nothing was sent; the real engine drops runs of unknown workflows without an error)"
        ) from None
    problems = []
    for name in sorted(names.counts, key=lambda n: (names.sites[n].file, names.sites[n].line, n)):
        full = conn.config.apply_namespace(name)
        if full not in result.missing:
            continue
        site = names.sites[name]
        runs = names.counts[name]
        message = f"workflow {full!r} does not exist in the target tenant ({runs} run{'s' if runs != 1 else ''})"
        if result.listed_none:
            message += "; the tenant lists no workflows at all: wrong tenant or namespace, or no worker registered yet"
        else:
            message += _hint(full, known)
        problems.append(Problem(site.file, site.line, message, site.where, "workflow_name"))
    raise ManifestError(problems)


def _known_names(conn: Connection) -> list[str]:
    names = []
    for row in conn.hatchet.list_workflows():
        names.append(row.name)
        if len(names) >= MAX_HINT_NAMES:
            break
    return names


def _hint(name: str, known: list[str]) -> str:
    folded = {k.lower(): k for k in known}
    if name.lower() in folded:
        return f" (did you mean {folded[name.lower()]!r}? names are case-sensitive)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
