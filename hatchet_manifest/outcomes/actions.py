"""Cancel and replay the runs of manifests: find them by their stamps and statuses (payloads left out), keep
only the runs the ledger recorded for their keys, and send their ids in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hatchet_client import Hatchet, RunRow
from hatchet_client.errors import HatchetClientError

from hatchet_manifest.ledger import Ledger
from hatchet_manifest.outcomes.read import OutcomesError, Scope
from hatchet_manifest.plan.stamps import STAMP_KEY, STAMP_MANIFEST

BATCH = 1000  # ids per cancel or replay request (Hatchet's filter mode caps replay at 1,000 runs)
PAGE = 1000  # rows per listing request


@dataclass(frozen=True, slots=True)
class Found:
    manifest: str
    key: str
    run_id: str
    status: str


@dataclass
class Selection:
    """The runs an action will touch, per manifest; `foreign`: runs under the stamps that the ledger did not
    record for their key (left alone)."""

    runs: list[Found]
    foreign: int = 0

    def count(self, status: str | None = None) -> int:
        return sum(1 for r in self.runs if status is None or r.status == status)

    def per_manifest(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.manifest] = counts.get(run.manifest, 0) + 1
        return counts


def select_runs(hatchet: Hatchet, ledger: Ledger, scope: Scope, statuses: Iterable[str]) -> Selection:
    """The recorded runs of the scope's manifests that are in one of `statuses` now."""
    wanted = tuple(statuses)
    selection = Selection([])
    for manifest in scope.asked:
        for page in _pages(hatchet, scope, manifest, wanted):
            keyed = [(str(r.additional_metadata[STAMP_KEY]), r) for r in page if STAMP_KEY in r.additional_metadata]
            selection.foreign += len(page) - len(keyed)
            entries = ledger.lookup(scope.target, sorted({key for key, _ in keyed}))
            for key, row in keyed:
                entry = entries.get(key)
                if entry is None or entry.run_id != row.run_id or entry.manifest != manifest:
                    selection.foreign += 1  # an older run of the key, or one another ledger recorded
                    continue
                selection.runs.append(Found(manifest, key, row.run_id, row.status))
    return selection


def _pages(hatchet: Hatchet, scope: Scope, manifest: str, statuses: tuple[str, ...]) -> Iterator[list[RunRow]]:
    rows = hatchet.list_runs(
        {STAMP_MANIFEST: manifest},
        "AND",
        since=scope.since(manifest),
        statuses=statuses,
        include_payloads=False,
        limit=PAGE,
    )
    page: list[RunRow] = []
    try:
        for row in rows:
            page.append(row)
            if len(page) == PAGE:
                yield page
                page = []
    except HatchetClientError as exc:
        raise OutcomesError(f"listing the runs of manifest {manifest}: {exc}") from None
    if page:
        yield page


def in_batches(runs: list[Found], send: Callable[[list[str]], list[str]], done: Callable[[list[Found]], None]) -> int:
    """Send the runs' ids `BATCH` at a time; `done` gets each batch the engine accepted. Returns how many runs
    were in accepted batches. The answer's echo is not a per-run verdict: Hatchet echoes every id it was given
    for a cancel, and task ids (not run ids) for a replay of a DAG run. A failed batch stops the rest: what was
    done before it is kept (and reported by the caller)."""
    accepted = 0
    for start in range(0, len(runs), BATCH):
        batch = runs[start : start + BATCH]
        try:
            send([r.run_id for r in batch])
        except HatchetClientError as exc:
            raise ActionError(accepted, f"{exc}") from None
        done(batch)
        accepted += len(batch)
    return accepted


class ActionError(OutcomesError):
    """A batch failed; `done` runs were acted on before it."""

    def __init__(self, done: int, message: str) -> None:
        self.done = done
        super().__init__(f"the engine refused a batch after {done} run(s) were done: {message}")


def cancel(hatchet: Hatchet, runs: list[Found]) -> int:
    return in_batches(runs, hatchet.cancel_runs, lambda hit: None)


def replay(hatchet: Hatchet, ledger: Ledger, scope: Scope, runs: list[Found]) -> int:
    """Replay the runs under their run ids; each replayed key's attempt is recorded in the ledger as its batch is
    answered (a crash between the answer and the record loses that batch's counts, not the runs)."""
    return in_batches(runs, hatchet.replay_runs, lambda hit: ledger.record_replays(scope.target, [r.key for r in hit]))
