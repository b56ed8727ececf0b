"""The engine as the source of truth: find runs by their stamps when the ledger does not know their keys.

For each manifest, the engine's REST run listing is read once (filter `hatchet-manifest/manifest:<name>`, AND,
paginated) into a temporary SQLite index (constant memory for any number of runs). Runs found are adopted with
their run ids and the digest of what the engine holds (the `hatchet-manifest/digest` stamp; for runs stamped
before it existed, the digest of the row's workflow name, input and metadata, without the keys the engine adds),
so a run whose manifest changed since is planned as changed, not unchanged. Runs older than the engine keeps (its retention) are
invisible: the ledger is the record that outlives retention.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hatchet_client import RunRow
from hatchet_client.errors import HatchetClientError

from hatchet_manifest.errors import HatchetManifestError
from hatchet_manifest.ledger import AdoptedRow, Ledger, Target
from hatchet_manifest.manifest.rendered import canonical_json, json_digest
from hatchet_manifest.manifest.sqlbatch import select_in
from hatchet_manifest.plan.planner import Known, RunIdentity
from hatchet_manifest.plan.stamps import STAMP_DIGEST, STAMP_KEY, STAMP_MANIFEST, user_metadata
from hatchet_manifest.plan.target import Connection


class LookupError_(HatchetManifestError):
    """The engine could not be asked."""


@dataclass
class LookupReport:
    adopted: dict[str, int] = field(default_factory=dict)  # manifest -> runs adopted
    oldest: dict[str, datetime] = field(default_factory=dict)  # manifest -> oldest stamped run seen
    stamped: dict[str, int] = field(default_factory=dict)  # manifest -> stamped runs in the engine


# Up to this many keys of a manifest are asked about one by one (both stamps, AND); more load the manifest's
# whole listing once. An apply that adds a few runs to a manifest of a million must not list the million.
FEW_KEYS = 20


class StampIndex:
    """Finds runs in the engine by their stamps, through the REST run listing, per manifest."""

    def __init__(self, conn: Connection, since: datetime) -> None:
        self.conn = conn
        self.since = since
        self.stamped: dict[str, int] = {}  # manifest -> stamped runs in the engine (for loaded manifests)
        self.oldest: dict[str, datetime] = {}  # manifest -> its oldest stamped run (for loaded manifests)
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute(
            "CREATE TABLE idx (manifest TEXT, key TEXT, run_id TEXT, digest TEXT, PRIMARY KEY (manifest, key))"
        )

    def find(self, manifest: str, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """key -> (run id, digest of what the engine holds) of the runs of `manifest` with these keys in the engine
        (the first one per key)."""
        try:
            if manifest not in self.stamped and len(keys) <= FEW_KEYS:
                return self._one_by_one(manifest, keys)
            if manifest not in self.stamped:
                self._load(manifest)
        except HatchetClientError as exc:
            raise LookupError_(
                f"could not list the runs of manifest {manifest!r} in the engine: {exc} "
                "(--no-engine-lookup plans from the ledger alone)"
            ) from None
        if not self.stamped[manifest] or not keys:
            return {}
        sql = "SELECT key, run_id, digest FROM idx WHERE manifest = ? AND key IN ({marks})"
        return {key: (run_id, digest) for key, run_id, digest in select_in(self._db, sql, keys, manifest)}

    def _one_by_one(self, manifest: str, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for key in keys:
            for run in self.conn.hatchet.list_runs({STAMP_MANIFEST: manifest, STAMP_KEY: key}, "AND", since=self.since):
                found.setdefault(key, (run.run_id, held_digest(run)))
        return found

    def _load(self, manifest: str) -> None:
        rows: list[tuple[str, str, str, str]] = []
        count = 0
        oldest: datetime | None = None
        self._db.execute("BEGIN")
        try:
            for run in self.conn.hatchet.list_runs({STAMP_MANIFEST: manifest}, "AND", since=self.since):
                key = run.additional_metadata.get(STAMP_KEY)
                if not isinstance(key, str):
                    continue
                count += 1
                created = _parse_time(run.created_at)
                if created is not None and (oldest is None or created < oldest):
                    oldest = created
                rows.append((manifest, key, run.run_id, held_digest(run)))
                if len(rows) == 1000:
                    self._db.executemany("INSERT OR IGNORE INTO idx VALUES (?,?,?,?)", rows)
                    rows.clear()
            self._db.executemany("INSERT OR IGNORE INTO idx VALUES (?,?,?,?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self.stamped[manifest] = count
        if oldest is not None:
            self.oldest[manifest] = oldest

    def close(self) -> None:
        self._db.close()


class EngineLookup:
    """Answers "is this key in the engine?" for runs the ledger does not know, adopting what it finds."""

    def __init__(self, conn: Connection, ledger: Ledger, target: Target, since: datetime, adopt: bool = True) -> None:
        self.ledger = ledger
        self.target = target
        self.adopt = adopt  # False for a preview (`diff`): what is found is planned, and nothing is written
        self.index = StampIndex(conn, since)
        self.report = LookupReport(stamped=self.index.stamped, oldest=self.index.oldest)

    def __call__(self, missing: Sequence[tuple[RunIdentity, str]]) -> dict[str, Known]:
        """Runs (with their digests) the ledger does not know -> those found in the engine, adopted."""
        by_manifest: dict[str, list[tuple[RunIdentity, str]]] = defaultdict(list)
        for run, digest in missing:
            by_manifest[run.manifest].append((run, digest))
        found: dict[str, Known] = {}
        for manifest, items in by_manifest.items():
            ids = self.index.find(manifest, [run.key for run, _ in items])
            adopted = [
                AdoptedRow(run.key, ids[run.key][1], manifest, run.file, ids[run.key][0])
                for run, _ in items
                if run.key in ids
            ]
            if adopted:
                if self.adopt:
                    self.ledger.adopt(self.target, adopted)
                self.report.adopted[manifest] = self.report.adopted.get(manifest, 0) + len(adopted)
                for row in adopted:
                    found[row.key] = Known(row.key, row.digest, "submitted", row.run_id, manifest)
        return found

    def finds_nothing(self, manifest: str) -> bool:
        """The manifest's listing was read and holds no stamped run."""
        return self.index.stamped.get(manifest) == 0

    def close(self) -> None:
        self.index.close()


def held_digest(run: RunRow) -> str:
    """The digest of what the engine holds for a stamped run (see the module's docstring)."""
    stamped = run.additional_metadata.get(STAMP_DIGEST)
    if isinstance(stamped, str) and stamped:
        return stamped
    metadata = user_metadata(dict(run.additional_metadata))
    name = run.workflow_name or ""
    data = run.input if isinstance(run.input, dict) else {}
    return json_digest(name, canonical_json(data), canonical_json({k: str(v) for k, v in metadata.items()}))


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def lookup_since(window: timedelta) -> datetime:
    return datetime.now(UTC) - window
