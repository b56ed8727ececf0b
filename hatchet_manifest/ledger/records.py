"""Per-manifest records and the counter that keeps them honest, once for both backends (`RecordKeeping`, the layer
between the interface and `sql.SqlLedger`).

An apply that leaves a manifest's rows exactly as the manifest renders records what the rendering read (a
fingerprint, opaque here) and how many runs it made. A later `diff` or `apply` may trust that record instead of
rendering the manifest again, but only while no write may have changed those rows since. That is what
`ledger_manifests.generation` counts: every write that may change which rows a manifest has, or their key, digest
or state from a record's point of view, adds one to the counter of each manifest it touches, in the write's own
transaction, whichever process or machine makes it: pending rows (the new rows' manifest, and the old rows' when
submitted rows are replaced), adoptions and forgets (the manifests the rows had and get), imports (every manifest
of the targets imported into). Outcomes (submitted, failed, unknown) add nothing: from a recorded state, where every
row of the manifest is submitted or failed and not declared any more, a row changes only through a pending row or
an adoption first. A record holds while its `sealed` equals `generation`.

The writes of this instance are counted apart (`_own`), so that an apply can record what it planned and wrote: its
`since` (`generations`) is the counter without its own writes, and `seal` makes a record only when the counter is
still `since` plus this instance's writes, that is when nobody else wrote those rows meanwhile.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from hatchet_manifest.ledger.base import BATCH, Ledger
from hatchet_manifest.ledger.dialect import C, Dialect
from hatchet_manifest.ledger.migrations import RECORDS_VERSION
from hatchet_manifest.ledger.values import Clock, ManifestRecord, Target

R = TypeVar("R")


class RecordSql:
    """The statements of records and counters, in a dialect's spelling."""

    def __init__(self, d: Dialect[C]) -> None:
        p = d.param
        self.select = (
            f"SELECT manifest, fingerprint, runs, salt, detail FROM ledger_manifests WHERE target_id = {p} "
            f"AND sealed = generation AND {d.any_of('manifest')}"
        )
        self.generations = (
            f"SELECT manifest, generation FROM ledger_manifests WHERE target_id = {p} AND {d.any_of('manifest')}"
        )
        self.bump = (
            f"INSERT INTO ledger_manifests (target_id, manifest, generation) VALUES ({p}, {p}, 1) "
            "ON CONFLICT (target_id, manifest) DO UPDATE SET generation = ledger_manifests.generation + 1"
        )
        self.bump_target = f"UPDATE ledger_manifests SET generation = generation + 1 WHERE target_id = {p}"
        self.seal = (
            f"UPDATE ledger_manifests SET sealed = generation, fingerprint = {p}, runs = {p}, salt = {p}, "
            f"detail = {p}, sealed_at = {p} WHERE target_id = {p} AND manifest = {p} AND generation = {p}"
        )
        self.seal_new = (  # a manifest no write ever touched (no runs): its counter starts at 0
            "INSERT INTO ledger_manifests (target_id, manifest, generation, sealed, fingerprint, runs, salt, detail, "
            f"sealed_at) VALUES ({p}, {p}, 0, 0, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (target_id, manifest) DO NOTHING"
        )


class RecordKeeping(Ledger, Generic[C]):
    """`records`, `generations` and `seal`, and the counting the writes of `sql.SqlLedger` do (`_bump`)."""

    _has_records: bool | None = None  # whether the schema has ledger_manifests (known at the first use)

    def __init__(self, location: str, clock: Clock, dialect: Dialect[C]) -> None:
        super().__init__(location, clock)
        self.dialect = dialect
        self._records_sql = RecordSql(dialect)
        self._own: Counter[tuple[int, str]] = Counter()  # (target id, manifest) -> this instance's writes counted

    @abstractmethod
    def _run(self, body: Callable[[C], R], *, write: bool = True, durable: bool = True) -> R:
        """body(connection) in one transaction, serialised with the other calls of this instance; LedgerError
        for a database error. `write=False`: body only reads. `durable=False`: the commit need not wait for the
        disk (outcomes, which a crash turns back into pending rows for reconciliation). The backend may run
        body again after a rollback (it must then be safe to)."""

    @abstractmethod
    def _known_target_id(self, conn: C, target: Target) -> int | None: ...

    @abstractmethod
    def _target_id(self, target: Target) -> int: ...

    def _keeps_records(self, conn: C | None = None) -> bool:
        """Whether the ledger has the table (a read-only ledger of an older schema does not); `conn`: inside a
        transaction, asked on its connection."""
        if self._has_records is None:
            version = self.schema_version() if conn is None else conn.execute(self.dialect.schema_version).fetchone()[0]
            self._has_records = int(version) >= RECORDS_VERSION
        return self._has_records

    # -- counting writes (inside the writes' transactions) ---------------------------------------------------

    def _manifests_of(self, conn: C, target_id: int, keys: Sequence[str]) -> set[str]:
        """The manifests the rows of these keys have now (before a write changes them)."""
        found: set[str] = set()
        for i in range(0, len(keys), BATCH):  # one primary-key probe a key, whatever the planner thinks
            sql, params = self.dialect.lookup("manifest", target_id, keys[i : i + BATCH])
            found.update(manifest for (manifest,) in conn.execute(sql, params))
        return found

    def _bump(self, conn: C, target_id: int, manifests: Iterable[str]) -> set[str]:
        """One more write for each of these manifests (in a fixed order: racing writers cannot deadlock);
        returns them, for `_wrote` once the transaction committed."""
        bumped = set(manifests)
        if self._keeps_records(conn):
            for manifest in sorted(bumped):
                conn.execute(self._records_sql.bump, (target_id, manifest))
        return bumped

    def _bump_target(self, conn: C, target_id: int) -> None:
        """One more write for every manifest of the target (an import: rows of any of them may have changed)."""
        if self._keeps_records(conn):
            conn.execute(self._records_sql.bump_target, (target_id,))

    def _wrote(self, target_id: int, manifests: Iterable[str]) -> None:
        """This instance's write (committed) counted in these manifests' generations."""
        with self._mutex:
            for manifest in manifests:
                self._own[target_id, manifest] += 1

    # -- the interface -----------------------------------------------------------------------------------------

    def records(self, target: Target, manifests: Collection[str]) -> dict[str, ManifestRecord]:
        wanted = sorted(set(manifests))
        if not wanted or not self._keeps_records():
            return {}

        def body(conn: C) -> dict[str, ManifestRecord]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return {}
            rows = conn.execute(self._records_sql.select, (target_id, self.dialect.list_param(wanted)))
            return {m: ManifestRecord(m, f, int(n), s, d) for m, f, n, s, d in rows}

        return self._run(body, write=False)

    def generations(self, target: Target, manifests: Collection[str]) -> dict[str, int]:
        wanted = sorted(set(manifests))
        if not wanted or not self._keeps_records():
            return {}

        def body(conn: C) -> dict[str, int]:
            target_id = self._known_target_id(conn, target)
            if target_id is None:
                return {}
            rows = conn.execute(self._records_sql.generations, (target_id, self.dialect.list_param(wanted)))
            return {m: int(g) - self._own[target_id, m] for m, g in rows}

        with self._mutex:  # this instance's writes are not counted while they are subtracted
            return self._run(body, write=False)

    def seal(self, target: Target, records: Sequence[ManifestRecord], since: Mapping[str, int]) -> list[str]:
        if not records or not self._keeps_records():
            return []
        sql, d = self._records_sql, self.dialect
        target_id = self._target_id(target)
        now = d.to_db_time(self._now())

        def body(conn: C) -> list[str]:
            sealed = []
            for r in records:
                expected = since.get(r.manifest, 0) + self._own[target_id, r.manifest]
                fields = (r.fingerprint, r.runs, r.salt, r.detail, now)
                done = conn.execute(sql.seal, (*fields, target_id, r.manifest, expected)).rowcount
                if not done and expected == 0:
                    done = conn.execute(sql.seal_new, (target_id, r.manifest, *fields)).rowcount
                if done:
                    sealed.append(r.manifest)
            return sealed

        with self._mutex:
            return self._run(body)
