"""Settle runs whose fate is unknown (a crash, a timeout) by finding their stamps in the engine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hatchet_manifest.ledger import AdoptedRow, Ledger, LedgerEntry, Target
from hatchet_manifest.manifest.rendered import KEY_PREFIXES
from hatchet_manifest.plan.lookup import LookupError_, StampIndex
from hatchet_manifest.plan.target import Connection
from hatchet_manifest.plan.triggers import TriggerIndex, TriggerLookupError

# Runs are looked up from a little before the oldest unsettled row was recorded (clock skew, slow writes).
SLACK = timedelta(minutes=15)


@dataclass
class Reconciled:
    adopted: int = 0
    still_unknown: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def unsettled(ledger: Ledger, target: Target, manifests: Collection[str]) -> list[LedgerEntry]:
    """The rows of these manifests left pending or unknown (the database filters them: no scan in Python)."""
    return list(ledger.entries(target, manifests, states=("pending", "unknown")))


def reconcile(
    ledger: Ledger, target: Target, conn: Connection, rows: list[LedgerEntry], grace: float = 5.0
) -> Reconciled:
    """Adopt the unsettled `rows` (see `unsettled`) found in the engine; mark the others `unknown` (a pending row
    after a crash).

    Rows touched less than `grace` seconds ago are left pending when not found: a call sent by a process that
    just died may still be committing on the engine."""
    report = Reconciled()
    if not rows:
        return report
    by_manifest: dict[str, dict[str, LedgerEntry]] = defaultdict(dict)
    for e in rows:
        by_manifest[e.manifest][e.key] = e
    recent = datetime.now(UTC) - timedelta(seconds=grace)
    since = min(e.created_at for e in rows) - SLACK
    index = StampIndex(conn, since=since)
    triggers = TriggerIndex(conn, since=since)
    try:
        for manifest, wanted in by_manifest.items():
            try:
                found = _find(index, triggers, manifest, list(wanted))
            except (LookupError_, TriggerLookupError) as exc:
                report.errors.append(str(exc))
                report.still_unknown.extend(wanted)
                continue
            if found:
                adopted = [AdoptedRow(k, held, manifest, wanted[k].file, rid) for k, (rid, held) in found.items()]
                ledger.adopt(target, adopted)
                report.adopted += len(found)
            missing = [k for k in wanted if k not in found]
            pending = [k for k in missing if wanted[k].state == "pending" and wanted[k].updated_at <= recent]
            if pending:
                ledger.record_unknown(
                    target, pending, "not confirmed before the apply stopped, and not found in the engine"
                )
            report.still_unknown.extend(missing)
    finally:
        index.close()
    return report


def _find(index: StampIndex, triggers: TriggerIndex, manifest: str, keys: list[str]) -> dict[str, tuple[str, str]]:
    """key -> (engine id, digest it holds) of these keys found in the engine: runs by the run listing, crons,
    schedules and events by their own (a run a cron started carries the cron's stamps: never taken for it)."""
    runs = [k for k in keys if not k.startswith(KEY_PREFIXES)]
    found = index.find(manifest, runs) if runs else {}
    for key in keys:
        if key.startswith(KEY_PREFIXES):
            held = triggers.find(manifest, key)
            if held:
                found[key] = (held[0].id, held[0].digest)
    return found


def preview_settled(conn: Connection, rows: list[LedgerEntry]) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """What `reconcile` would find, without writing: key -> (run id, digest the engine holds) of the unsettled
    `rows` found in the engine, and the errors met (for `diff`, which never writes to the ledger)."""
    found: dict[str, tuple[str, str]] = {}
    errors: list[str] = []
    if not rows:
        return found, errors
    by_manifest: dict[str, list[str]] = defaultdict(list)
    for e in rows:
        by_manifest[e.manifest].append(e.key)
    since = min(e.created_at for e in rows) - SLACK
    index = StampIndex(conn, since=since)
    triggers = TriggerIndex(conn, since=since)
    try:
        for manifest, keys in by_manifest.items():
            try:
                found.update(_find(index, triggers, manifest, keys))
            except (LookupError_, TriggerLookupError) as exc:
                errors.append(str(exc))
    finally:
        index.close()
    return found, errors
