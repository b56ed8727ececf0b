"""The runs that the manifests' crons, schedules and events started, per trigger, read from the engine.

Those runs carry their trigger's stamps (`hatchet-manifest/trigger-of: <manifest>`, `hatchet-manifest/key:
cron:<name>`), not a run's: they are not the manifest's applied runs, and are counted apart. One listing per
manifest, over a window (a cron fires without end: its history is bounded by time and by a row cap).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hatchet_client.errors import HatchetClientError

from hatchet_manifest.manifest.rendered import kind_of_key
from hatchet_manifest.outcomes.read import OutcomesError
from hatchet_manifest.plan.stamps import STAMP_KEY, STAMP_TRIGGER_MANIFEST

WINDOW = timedelta(days=7)
MAX_ROWS = 10_000  # runs read per manifest


@dataclass
class Started:
    """The runs one trigger started in the window, by status."""

    manifest: str
    key: str
    counts: dict[str, int] = field(default_factory=dict)
    last: str = ""  # when the newest one was created (RFC 3339, as the engine says)

    @property
    def kind(self) -> str:
        return kind_of_key(self.key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "key": self.key,
            "kind": self.kind,
            "runs": sum(self.counts.values()),
            "by_status": dict(sorted(self.counts.items())),
            "last_created_at": self.last or None,
        }


@dataclass
class StartedRuns:
    triggers: list[Started]
    truncated: list[str]  # manifests with more runs in the window than were read
    since: datetime


def started_runs(hatchet: Any, manifests: tuple[str, ...], now: datetime | None = None) -> StartedRuns:
    """Per trigger of these manifests, the runs it started in the last WINDOW."""
    since = (now or datetime.now(UTC)) - WINDOW
    found: dict[tuple[str, str], Started] = {}
    truncated = []
    for manifest in manifests:
        try:
            rows = list(
                itertools.islice(
                    hatchet.list_runs({STAMP_TRIGGER_MANIFEST: manifest}, "AND", since=since, include_payloads=False),
                    MAX_ROWS + 1,
                )
            )
        except HatchetClientError as exc:
            raise OutcomesError(f"asking the engine about the runs triggers started: {exc}") from None
        if len(rows) > MAX_ROWS:
            truncated.append(manifest)
            rows = rows[:MAX_ROWS]
        for row in rows:
            key = row.additional_metadata.get(STAMP_KEY)
            if not isinstance(key, str) or kind_of_key(key) == "run":
                continue
            item = found.setdefault((manifest, key), Started(manifest, key))
            item.counts[row.status] = item.counts.get(row.status, 0) + 1
            item.last = max(item.last, row.created_at)
    return StartedRuns(sorted(found.values(), key=lambda s: (s.manifest, s.key)), truncated, since)
