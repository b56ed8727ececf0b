"""One poll of the engine: every followed manifest's counts (one metrics request each) and, when asked, the
failed and cancelled runs listed (one listing request per manifest that has any, payloads left out)."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hatchet_client import Hatchet
from hatchet_client.errors import HatchetClientError

from hatchet_manifest.errors import HatchetManifestError
from hatchet_manifest.ledger import Ledger, Target
from hatchet_manifest.ledger.values import ManifestTotal
from hatchet_manifest.outcomes.tally import Tally, total
from hatchet_manifest.plan.stamps import STAMP_KEY, STAMP_MANIFEST

# How far before a manifest's oldest ledger record the engine is asked about: the ledger's clock and the
# engine's may differ, and a run is created in the engine after it is recorded as pending.
SINCE_MARGIN = timedelta(hours=1)
ERROR_CHARS = 500  # of an engine's error message, shown per run


class OutcomesError(HatchetManifestError):
    """The engine could not be asked about the runs (it did not answer, or answered what cannot be read)."""


@dataclass(frozen=True)
class Scope:
    """The followed manifests on one target, with what the ledger recorded for each (manifests the ledger has
    no submitted run of are followed too: they count nothing)."""

    target: Target
    manifests: tuple[str, ...]
    recorded: dict[str, ManifestTotal]

    @classmethod
    def of(cls, ledger: Ledger, target: Target, manifests: Collection[str]) -> Scope:
        names = tuple(dict.fromkeys(manifests))
        return cls(target, names, ledger.manifest_totals(target, names))

    def since(self, manifest: str) -> datetime:
        return self.recorded[manifest].oldest - SINCE_MARGIN

    @property
    def asked(self) -> tuple[str, ...]:
        """The manifests the engine is asked about: those with submitted runs."""
        return tuple(m for m in self.manifests if m in self.recorded)


@dataclass(frozen=True, slots=True)
class FailedRun:
    manifest: str
    key: str | None  # None: the run carries no key stamp (not ours to name)
    run_id: str
    status: str  # FAILED or CANCELLED
    error: str
    attempts: int  # times `retry` replayed it, from the ledger

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "key": self.key,
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "replays": self.attempts,
        }


@dataclass(frozen=True)
class Snapshot:
    tallies: tuple[Tally, ...]
    failed: tuple[FailedRun, ...] = ()  # the first `show` failed or cancelled runs, over all manifests
    requests: int = 0  # requests made for this snapshot

    @property
    def total(self) -> Tally:
        return total(self.tallies)

    @property
    def not_listed(self) -> int:
        """Failed or cancelled runs beyond those listed."""
        return self.total.failed + self.total.cancelled - len(self.failed)


@dataclass
class Reader:
    """Reads snapshots of a scope from the engine; counts every request it makes."""

    hatchet: Hatchet
    scope: Scope
    ledger: Ledger
    show: int = 10
    requests: int = field(default=0, init=False)

    def tallies(self) -> tuple[tuple[Tally, ...], int]:
        made = 0
        tallies = []
        for manifest in self.scope.manifests:
            recorded = self.scope.recorded.get(manifest)
            if recorded is None:
                tallies.append(Tally(manifest))
                continue
            counts = self._ask(
                lambda m=manifest: self.hatchet.run_metrics({STAMP_MANIFEST: m}, since=self.scope.since(m))
            )
            made += 1
            tallies.append(Tally.from_counts(manifest, recorded.submitted, counts))
        return tuple(tallies), made

    def snapshot(self, *, with_failed: bool) -> Snapshot:
        tallies, made = self.tallies()
        failed: list[FailedRun] = []
        if with_failed and self.show > 0:
            for tally in tallies:
                room = self.show - len(failed)
                if room <= 0:
                    break
                if tally.failed or tally.cancelled:
                    failed.extend(self.failed_runs(tally.manifest, room))
                    made += 1
        self.requests += made
        return Snapshot(tallies, tuple(failed), made)

    def failed_runs(self, manifest: str, limit: int) -> list[FailedRun]:
        rows = self._ask(
            lambda: list(
                itertools.islice(
                    self.hatchet.list_runs(
                        {STAMP_MANIFEST: manifest},
                        "AND",
                        since=self.scope.since(manifest),
                        statuses=("FAILED", "CANCELLED"),
                        include_payloads=False,
                        limit=min(limit, 1000),
                    ),
                    limit,
                )
            )
        )
        keys = [str(row.additional_metadata[STAMP_KEY]) for row in rows if STAMP_KEY in row.additional_metadata]
        replays = self.ledger.replays(self.scope.target, sorted(set(keys)))
        found = []
        for row in rows:
            key = row.additional_metadata.get(STAMP_KEY)
            name = None if key is None else str(key)
            error = row.error_message or ("cancelled" if row.status == "CANCELLED" else "no error message")
            found.append(
                FailedRun(manifest, name, row.run_id, row.status, error[:ERROR_CHARS], replays.get(name or "", 0))
            )
        return found

    def _ask(self, call: Any) -> Any:
        try:
            return call()
        except HatchetClientError as exc:  # its message never carries the token
            raise OutcomesError(f"asking the engine about the runs: {exc}") from None
