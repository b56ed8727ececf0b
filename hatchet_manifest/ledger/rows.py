"""The export format: one JSON object per ledger row, the same whichever backend wrote it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.base import RUN_STATES, LedgerEntry, RunState, Target

REQUIRED = ("tenant_id", "address", "key", "digest", "manifest", "file", "state", "created_at", "updated_at")
OPTIONAL = ("run_id", "error")


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC, always with microseconds, so that the text is stable: 2024-05-01T12:00:00.000000+00:00."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def row_to_json(target: Target, entry: LedgerEntry) -> dict[str, Any]:
    return {
        "tenant_id": target.tenant_id,
        "address": target.address,
        "key": entry.key,
        "digest": entry.digest,
        "run_id": entry.run_id,
        "manifest": entry.manifest,
        "file": entry.file,
        "state": entry.state,
        "error": entry.error,
        "created_at": format_time(entry.created_at),
        "updated_at": format_time(entry.updated_at),
    }


def _parse_time(value: str, field: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LedgerError(f"{where}: {field}: not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise LedgerError(f"{where}: {field}: the time has no UTC offset: {value!r}")
    return moment.astimezone(UTC)


def row_from_json(row: Mapping[str, Any], number: int) -> tuple[Target, LedgerEntry]:
    """Validate one exported row (`number` counts from 1, for the message) and turn it into values."""
    where = f"row {number}"
    if not isinstance(row, Mapping):
        raise LedgerError(f"{where}: expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise LedgerError(f"{where}: unknown field(s): {', '.join(map(str, unknown))}")
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise LedgerError(f"{where}: missing field(s): {', '.join(missing)}")
    for name in (*REQUIRED, *OPTIONAL):
        value = row.get(name)
        if name in OPTIONAL and value is None:
            continue
        if not isinstance(value, str) or (name in ("key", "tenant_id", "address", "digest") and not value):
            raise LedgerError(f"{where}: {name}: expected a non-empty string, got {value!r}")
    state = row["state"]
    if state not in RUN_STATES:
        raise LedgerError(f"{where}: state: expected one of {', '.join(RUN_STATES)}, got {state!r}")
    run_id = row.get("run_id")
    if (state == "submitted") != (run_id is not None):
        raise LedgerError(f"{where}: run_id: a run id is required for state submitted and only for it")
    entry = LedgerEntry(
        key=row["key"],
        digest=row["digest"],
        run_id=run_id,
        manifest=row["manifest"],
        file=row["file"],
        state=cast(RunState, state),
        error=row.get("error"),
        created_at=_parse_time(row["created_at"], "created_at", where),
        updated_at=_parse_time(row["updated_at"], "updated_at", where),
    )
    return Target(row["tenant_id"], row["address"]), entry
