"""The workflow names a plan would trigger, each with the first run that uses it (for the preflight's messages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hatchet_manifest.manifest.rendered import RenderedRun


@dataclass(frozen=True, slots=True)
class Site:
    """Where a workflow name is first used: the run that names it."""

    file: str
    line: int
    where: str


@dataclass
class WorkflowNames:
    """The workflow names of the runs to send, each with the first run that uses it and how many do."""

    sites: dict[str, Site] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, run: RenderedRun) -> None:
        name = run.workflow_name
        if name in self.counts:
            self.counts[name] += 1
        else:
            self.counts[name] = 1
            self.sites[name] = Site(run.file, run.line, run.where)

    def add_site(self, name: str, site: Site, count: int = 1) -> None:
        if name not in self.counts:
            self.sites[name] = site
            self.counts[name] = 0
        self.counts[name] += count

    def __len__(self) -> int:
        return len(self.counts)
