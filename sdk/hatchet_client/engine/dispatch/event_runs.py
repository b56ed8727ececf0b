"""Events: stored, and matched against the workflows' `on_events`, inside the scheduler's transaction.

As on Hatchet (`ListWorkflowsForEvents`, `TriggeredByEvent.ToMetadata`): a pattern matches a key when the key is
`LIKE` the pattern with `*` read as `%` (so `%` and `_` are wildcards too, `\\` escapes, case counts); the newest
version of every workflow is matched, and each matching pattern starts a run (two patterns of one workflow that
both match: two runs). A run's input is the event's payload, its priority the event's (else the workflow's), its
metadata the event's without `hatchet__` keys (bar `hatchet__source_workflow_run_id` and
`hatchet__source_step_run_id`), plus `hatchet__event_id` and `hatchet__event_key`. Filters (a workflow's
`default_filters`, CEL expressions) are not evaluated: the event's scope is stored, and every match triggers.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.dispatch.spawn import Spawn
from hatchet_client.engine.schema import iso_utc

_KEPT = ("hatchet__source_workflow_run_id", "hatchet__source_step_run_id")
_ANY = object()  # `%`
_ONE = object()  # `_`


@dataclass(frozen=True, slots=True)
class EventIn:
    """A pushed event, checked (event_ingest.py). `payload` is a JSON object's text; `metadata` JSON text or None."""

    key: str
    payload: str
    metadata: str | None
    priority: int | None
    scope: str | None


def like(pattern: str) -> Callable[[str], bool]:
    """Whether a text is `LIKE pattern` (PostgreSQL, case-sensitive: `%` any run, `_` any one character, `\\`
    escapes the next one; a trailing `\\` is taken literally). Linear-time matching, no regular expression."""
    tokens: list[object] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i + 1])
            i += 2
            continue
        tokens.append(_ANY if ch == "%" else _ONE if ch == "_" else ch)
        i += 1

    def match(text: str) -> bool:
        t = p = 0
        star_p, star_t = -1, 0
        while t < len(text):
            token = tokens[p] if p < len(tokens) else None
            if token is _ANY:
                star_p, star_t = p, t
                p += 1
            elif token is not None and (token is _ONE or token == text[t]):
                p += 1
                t += 1
            elif star_p >= 0:
                star_t += 1
                p, t = star_p + 1, star_t
            else:
                return False
        return all(token is _ANY for token in tokens[p:])

    return match


_MATCHERS: dict[str, Callable[[str], bool]] = {}


def _matcher(pattern: str) -> Callable[[str], bool]:
    found = _MATCHERS.get(pattern)
    if found is None:
        if len(_MATCHERS) > 10_000:
            _MATCHERS.clear()
        found = _MATCHERS[pattern] = like(pattern.replace("*", "%"))
    return found


def run_metadata(metadata: str | None, event_id: str, key: str) -> dict[str, Any]:
    try:
        original = json.loads(metadata) if metadata else {}
    except ValueError:
        original = {}
    if not isinstance(original, dict):
        original = {}
    cleaned = {k: v for k, v in original.items() if not k.startswith("hatchet__") or k in _KEPT}
    return {**cleaned, "hatchet__event_id": event_id, "hatchet__event_key": key}


def push(
    conn: sqlite3.Connection,
    now: float,
    events: tuple[EventIn, ...],
    latest: Mapping[str, str],
    versions: Mapping[str, WorkflowDef],
) -> tuple[list[tuple[str, float]], list[Spawn]]:
    """Store the events; ((event id, stored at) per event, the runs they start)."""
    stored: list[tuple[str, float]] = []
    spawns: list[Spawn] = []
    patterns = [(name, p) for name, vid in latest.items() for p in versions[vid].event_triggers]
    for event in events:
        event_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO events (event_id, key, payload, additional_metadata, priority, scope, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, event.key, event.payload, event.metadata, event.priority, event.scope, iso_utc(now)),
        )
        stored.append((event_id, now))
        for name, pattern in patterns:
            if _matcher(pattern)(event.key):
                metadata = run_metadata(event.metadata, event_id, event.key)
                spawns.append(Spawn(name, event.payload, metadata, event.priority))
    return stored, spawns
