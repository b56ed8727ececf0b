"""Baselines a plan compares with: the ledger of a target, or the manifests at a git revision."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from hatchet_manifest.ledger import Ledger, LedgerEntry, Target
from hatchet_manifest.manifest.rendered import RenderedRun
from hatchet_manifest.manifest.sqlbatch import select_in
from hatchet_manifest.plan.planner import Known, run_digest


def _known(e: LedgerEntry) -> Known:
    return Known(e.key, e.digest, e.state, e.run_id, e.manifest)


class LedgerBaseline:
    """What the ledger recorded for one target."""

    def __init__(self, ledger: Ledger, target: Target) -> None:
        self.ledger = ledger
        self.target = target

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]:
        return {k: _known(e) for k, e in self.ledger.lookup(self.target, keys).items()}

    def known(self, manifests: Sequence[str]) -> Iterator[Known]:
        return (_known(e) for e in self.ledger.entries(self.target, manifests))


class SettledBaseline(LedgerBaseline):
    """The ledger as `reconcile` would leave it: unsettled rows found in the engine count as submitted (`diff`
    shows what `apply` will do without writing the adoption itself)."""

    def __init__(self, ledger: Ledger, target: Target, found: dict[str, tuple[str, str]]) -> None:
        super().__init__(ledger, target)
        self.found = found

    def _settled(self, k: Known) -> Known:
        hit = self.found.get(k.key) if k.state in ("pending", "unknown") else None
        if hit is None:
            return k
        return Known(k.key, hit[1], "submitted", hit[0], k.manifest)

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]:
        known = super().lookup(keys)
        if self.found:
            known = {key: self._settled(k) for key, k in known.items()}
        return known

    def known(self, manifests: Sequence[str]) -> Iterator[Known]:
        return (self._settled(k) for k in super().known(manifests))


class RenderedBaseline:
    """Runs rendered from another revision, held in a temporary SQLite table (any size)."""

    def __init__(self, runs: Iterable[RenderedRun], namespace: str = "") -> None:
        self._db = sqlite3.connect("", isolation_level=None)  # a private temporary database on disk
        self._db.execute(
            "CREATE TABLE runs (key TEXT PRIMARY KEY, digest TEXT, manifest TEXT, workflow TEXT, input TEXT, metadata TEXT,"
            " trigger TEXT)"
        )
        batch: list[tuple[str, str, str, str, str, str, str | None]] = []
        self._db.execute("BEGIN")
        for run in runs:
            batch.append(
                (
                    run.key,
                    run_digest(run, namespace),
                    run.manifest,
                    run.workflow_name,
                    json.dumps(run.input),
                    json.dumps(run.additional_metadata),
                    None if run.trigger is None else json.dumps(run.trigger),
                )
            )
            if len(batch) == 1000:
                self._db.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?)", batch)
                batch.clear()
        self._db.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?)", batch)
        self._db.execute("COMMIT")

    @staticmethod
    def _row(row: tuple[str, str, str, str, str, str, str | None]) -> Known:
        key, digest, manifest, workflow, data, metadata, trigger = row
        return Known(
            key,
            digest,
            "declared",
            None,
            manifest,
            workflow,
            json.loads(data),
            json.loads(metadata),
            None if trigger is None else json.loads(trigger),
        )

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]:
        return {
            row[0]: self._row(row) for row in select_in(self._db, "SELECT * FROM runs WHERE key IN ({marks})", keys)
        }

    def known(self, manifests: Sequence[str]) -> Iterator[Known]:
        # Every run of the base counts: a manifest deleted by the change removes all of its runs.
        return (self._row(row) for row in self._db.execute("SELECT * FROM runs ORDER BY key"))

    def close(self) -> None:
        self._db.close()
