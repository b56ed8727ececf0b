"""The export format: one JSON object per ledger row, the same whichever backend wrote it; reading it back.

Pure values <-> JSON (no database): `Ledger.export_rows` writes rows with `row_to_json`, `Ledger.import_rows`
reads them with `parse_rows`; the `ledger export/import` commands add the JSON lines framing (`to_line`,
`parse_lines`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.values import RUN_STATES, LedgerEntry, RunState, Target


class RowError(LedgerError):
    """A row of an import that is not a valid ledger row; `number` counts rows (lines of a JSON lines file) from 1."""

    def __init__(self, number: int, message: str) -> None:
        self.number = number
        self.reason = message
        super().__init__(f"row {number}: {message}")


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


def to_line(row: dict[str, Any]) -> str:
    """One JSON lines record (no newline), byte-identical for identical rows."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def parse_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """JSON lines -> objects; row N is line N (a blank line is an error, as JSON lines has none)."""
    for number, line in enumerate(lines, 1):
        try:
            yield json.loads(line)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise RowError(number, f"not valid JSON: {reason}") from None


def _parse_time(value: str, field: str, number: int) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RowError(number, f"{field}: not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise RowError(number, f"{field}: the time has no UTC offset: {value!r}")
    return moment.astimezone(UTC)


def row_from_json(row: Mapping[str, Any], number: int) -> tuple[Target, LedgerEntry]:
    """Validate one exported row (`number` counts from 1, for the message) and turn it into values."""
    if not isinstance(row, Mapping):
        raise RowError(number, f"expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise RowError(number, f"unknown field(s): {', '.join(map(str, unknown))}")
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise RowError(number, f"missing field(s): {', '.join(missing)}")
    for name in (*REQUIRED, *OPTIONAL):
        value = row.get(name)
        if name in OPTIONAL and value is None:
            continue
        if not isinstance(value, str) or (name in ("key", "tenant_id", "address", "digest") and not value):
            raise RowError(number, f"{name}: expected a non-empty string, got {value!r}")
    state = row["state"]
    if state not in RUN_STATES:
        raise RowError(number, f"state: expected one of {', '.join(RUN_STATES)}, got {state!r}")
    run_id = row.get("run_id")
    if (state == "submitted") != (run_id is not None):
        raise RowError(number, "run_id: a run id is required for state submitted and only for it")
    entry = LedgerEntry(
        key=row["key"],
        digest=row["digest"],
        run_id=run_id,
        manifest=row["manifest"],
        file=row["file"],
        state=cast(RunState, state),
        error=row.get("error"),
        created_at=_parse_time(row["created_at"], "created_at", number),
        updated_at=_parse_time(row["updated_at"], "updated_at", number),
    )
    return Target(row["tenant_id"], row["address"]), entry


def parse_rows(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[tuple[Target, LedgerEntry]]]:
    """Exported rows, validated and turned into values, `size` at a time (rows are numbered from 1 across
    chunks); the same target and key twice in one chunk is a RowError."""
    it = iter(rows)
    number = 0
    while chunk := list(itertools.islice(it, size)):
        parsed = []
        first_seen: dict[tuple[Target, str], int] = {}
        for row in chunk:
            number += 1
            target, entry = row_from_json(row, number)
            earlier = first_seen.setdefault((target, entry.key), number)
            if earlier != number:
                raise RowError(number, f"the same target and key as row {earlier}")
            parsed.append((target, entry))
        yield parsed
