"""The ledger's transition rules, as the reasons a call gives for the keys it left alone.

Pure functions over what the ledger holds (key -> (state, run id)), no SQL: `sql.SqlLedger` runs them when a
statement changed fewer rows than it was given, to say why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.values import AdoptedRow, LedgerEntry, Target, some

Current = Mapping[str, tuple[str, str | None]]  # key -> (state, run id), of the keys the ledger holds


def ensure_unique(keys: Iterable[str], what: str) -> list[str]:
    """The keys as a list; a key twice in one call is a caller bug, reported before anything is written."""
    listed = list(keys)
    if len(set(listed)) != len(listed):
        dupes = sorted(k for k, n in Counter(listed).items() if n > 1)
        raise LedgerError(f"{what}: the same key appears more than once in one call: {some(dupes)}")
    return listed


def refusals(runs: Iterable[tuple[str, str | None]], current: Current) -> dict[str, str]:
    """Why a state change left these runs alone, key -> reason, from what the ledger holds for them now
    (`current`: key -> (state, run id)). `runs`: (key, the run id the engine reported, or None for an outcome
    without one). A run submitted as that same id changed nothing and is no problem."""
    problems: dict[str, str] = {}
    for key, run_id in runs:
        state, existing = current.get(key, (None, None))
        accepted = f"; the engine accepted it as run {run_id}" if run_id else ""
        if state is None:
            problems[key] = f"not in the ledger{accepted}"
        elif state == "submitted" and existing != run_id:
            reported = f"; now reported as run {run_id}" if run_id else ""
            problems[key] = f"already submitted as run {existing}{reported}"
    return problems


def adopt_refusals(rows: Sequence[AdoptedRow], current: Current) -> dict[str, str]:
    """Why `adopt` left these rows alone: their key is submitted as another run."""
    problems: dict[str, str] = {}
    for row in rows:
        state, existing = current[row.key]
        if state == "submitted" and existing != row.run_id:
            problems[row.key] = f"already submitted as run {existing}; the engine also has run {row.run_id}"
    return problems


def import_refusal(rows: Iterable[tuple[Target, LedgerEntry]], current: Mapping[Target, Current]) -> LedgerError:
    """The error that rolls an import back: the rows that would change a submitted run (`current`: what the
    ledger holds for the rows' keys, per target)."""
    problems = []
    for target, e in rows:
        state, run_id = current[target].get(e.key, (None, None))
        if state == "submitted" and (e.state, e.run_id) != (state, run_id):
            problems.append(
                f"{target.id} {e.key}: submitted as run {run_id} in the ledger; the import has it {e.state}"
                + (f" as run {e.run_id}" if e.run_id else "")
            )
    return LedgerError(
        f"import refused, nothing imported: {len(problems)} row(s) would change submitted runs: "
        + "; ".join(problems[:10])
    )
