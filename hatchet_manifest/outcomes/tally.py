"""One manifest's runs by status: what the engine counts under its stamp, against what the ledger recorded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Hatchet's run statuses (V1TaskStatus), in the order a run goes through them.
STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")

Outcome = Literal["completed", "failed", "unfinished"]


@dataclass(frozen=True, slots=True)
class Tally:
    """`recorded`: runs the ledger recorded as submitted; the statuses come from the engine. `not_found`:
    recorded runs the engine does not hold (dropped, past its retention, or not visible yet: Hatchet's listings
    trail its writes by a moment). `untracked`: runs the engine holds under the stamp beyond those recorded
    (applied from another ledger, or replaced with --resubmit-changed: the old run keeps the stamp)."""

    manifest: str
    recorded: int = 0
    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    not_found: int = 0
    untracked: int = 0

    @classmethod
    def from_counts(cls, manifest: str, recorded: int, counts: Mapping[str, int]) -> Tally:
        by_status = {status.lower(): max(0, int(counts.get(status, 0))) for status in STATUSES}
        held = sum(by_status.values())
        return cls(
            manifest, recorded, **by_status, not_found=max(0, recorded - held), untracked=max(0, held - recorded)
        )

    @property
    def unfinished(self) -> int:
        return self.queued + self.running

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled

    def outcome(self, *, settled: bool = True) -> Outcome:
        """unfinished while runs are queued or running (and, until `settled`, while some are not found: they may
        not be visible yet); then failed if any run failed, was cancelled or is not found; else completed."""
        if self.unfinished or (self.not_found and not settled):
            return "unfinished"
        if self.failed or self.cancelled or self.not_found:
            return "failed"
        return "completed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "recorded": self.recorded,
            **{status.lower(): getattr(self, status.lower()) for status in STATUSES},
            "not_found": self.not_found,
            "untracked": self.untracked,
        }


def total(tallies: Iterable[Tally]) -> Tally:
    """Every manifest's tally added up (not_found and untracked per manifest: one manifest's extra runs do not
    make up for another's missing ones)."""
    items = list(tallies)
    return Tally("total", **{f: sum(getattr(t, f) for t in items) for f in _COUNTS})


_COUNTS = ("recorded", "queued", "running", "completed", "failed", "cancelled", "not_found", "untracked")
