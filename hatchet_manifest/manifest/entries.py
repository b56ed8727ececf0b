"""Compiled run entries and the log of problems a render collects."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hatchet_manifest.errors import ManifestError, Problem
from hatchet_manifest.manifest.compile import LeafInfo, Program, Tree
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.model import TemplateItem
from hatchet_manifest.manifest.rendered import content_digest


class Skip(Exception):
    """The current run has problems (already recorded)."""


@dataclass(frozen=True)
class Fields:
    """Where the entries of a section keep what every entry has, as paths in messages (`a.b`); their location in
    the entry is the path split on dots."""

    workflow: str
    key: str
    input: str
    metadata: str
    priority: str

    @staticmethod
    def loc(path: str) -> tuple[str, ...]:
        return tuple(path.split("."))


RUN_FIELDS = Fields("workflow_name", "key", "input", "options.additional_metadata", "options.priority")
SECTION_FIELDS = {
    "runs": RUN_FIELDS,
    "crons": Fields("workflow_name", "name", "input", "additional_metadata", "priority"),
    "schedules": Fields("workflow_name", "key", "input", "additional_metadata", "priority"),
    "events": Fields("event_key", "key", "payload", "additional_metadata", "priority"),
}
# Each trigger section's own fields, evaluated per item like the others (`allow_past` is plain data).
TRIGGER_FIELDS = {"crons": ("expression", "enabled"), "schedules": ("trigger_at",), "events": ("scope",)}


@dataclass
class Entry:
    """A compiled structured run entry."""

    manifest: LoadedManifest
    index: int
    line: int
    as_name: str
    program: Program
    workflow: Tree
    key: Tree | None
    input: Tree
    metadata: Tree
    priority: Tree
    when: Tree | None
    schema_source: str | dict[str, Any] | None
    uses_secret: bool
    variables: dict[str, Any]
    expansions: list[tuple[dict[str, Any], Iterable[Any] | None]] = field(default_factory=list)
    count: int = 0
    section: str = "runs"  # or a trigger section (crons, schedules, events)
    extra: dict[str, Tree] = field(default_factory=dict)  # a trigger section's own fields (TRIGGER_FIELDS)
    allow_past: bool = False  # schedules: a trigger_at in the past may be created

    @property
    def fields(self) -> Fields:
        return SECTION_FIELDS[self.section]


@dataclass
class TemplateEntry:
    """A `template:` entry, rendered and parsed into items at prepare time."""

    manifest: LoadedManifest
    index: int
    line: int
    items: list[tuple[TemplateItem, int]]
    section = "runs"  # a template block is a run entry
    fields = RUN_FIELDS

    @property
    def count(self) -> int:
        return len(self.items)


AnyEntry = Entry | TemplateEntry


class ProblemLog:
    """Every problem of a render, the first `limit` kept with the ordinal of the item each is about."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.problems: list[Problem] = []
        self.ordinals: list[int] = []
        self.count = 0
        self.ordinal = 0  # the item being rendered

    def add(self, file: str, line: int | None, message: str, where: str = "", path: str = "") -> None:
        self.count += 1
        if len(self.problems) < self.limit:
            self.problems.append(Problem(file, line, message, where, path))
            self.ordinals.append(self.ordinal)

    def at(self, entry: AnyEntry, where: str, path: str, message: str, loc: tuple[str | int, ...] = ()) -> None:
        """A problem of one run of `entry`, at the line of `loc` inside the entry (or the entry's line)."""
        line = entry.manifest.doc.line_of((entry.section, entry.index, *loc)) if loc else entry.line
        self.add(entry.manifest.file, line, message, where, path)

    def raise_if_any(self) -> None:
        if self.count:
            raise ManifestError.of(self.problems, self.count)


def default_key(
    entry: AnyEntry,
    workflow: str,
    data: dict[str, Any],
    metadata: dict[str, str],
    trigger: dict[str, Any] | None = None,
    prefix: str = "",
) -> str:
    """`<manifest>/<entry>/<content digest>`: the key of a run entry that names none (a trigger's: after its
    kind's prefix, with its own fields in the digest, so that two schedules at two times differ)."""
    content = metadata if trigger is None else {"metadata": metadata, "trigger": trigger}
    return f"{prefix}{entry.manifest.name}/{entry.index}/{content_digest(workflow, data, content)[:12]}"


def info(path: str, line: int) -> LeafInfo:
    return LeafInfo(path, line, "")


def short(value: Any) -> str:
    t = type(value)
    text = str(value) if t is int or t is str else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def dup_hint(entry: AnyEntry) -> str:
    if isinstance(entry, Entry) and entry.key is None:
        return " (identical runs get the same default key: give the entry a `key:` that tells them apart)"
    return ""
