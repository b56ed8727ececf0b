"""The export format: one JSON object per ledger row, the same whichever backend wrote it; reading it back.

Pure values <-> JSON (no database): `Ledger.export_rows` writes rows with `row_to_json`, `Ledger.import_rows`
reads them with `parse_rows`; the `ledger export/import` commands add the JSON lines framing (`to_line`,
`read_lines`, `parse_lines`).

Reading is for untrusted files: streamed (one line at a time, each at most MAX_LINE_BYTES), strict UTF-8, JSON only
(no NaN, no duplicate fields; numbers and nesting are refused as values, never converted or recursed into beyond
what the parser bounds), and every refusal is a RowError naming the line and what is wrong, the values quoted as
JSON, shortened and escaped.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.values import RUN_STATES, LedgerEntry, RunState, Target
from hatchet_manifest.text import escape, shorten, unsafe_char_problem

MAX_LINE_BYTES = 1 << 20  # a row is a few hundred bytes; its error text is capped when recorded (sql.ERROR_LIMIT)
IDENTITIES = ("tenant_id", "address", "key", "run_id", "manifest")  # shown to people: no control characters


class RowError(LedgerError):
    """A row of an import that is not a valid ledger row; `number` counts rows (lines of a JSON lines file) from 1."""

    def __init__(self, number: int, message: str) -> None:
        self.number = number
        self.reason = message
        super().__init__(f"row {number}: {message}")


class _Number:
    """A JSON number, kept as written: no field takes one, and converting it could be costly (huge integers)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def shown(value: Any) -> str:
    """A JSON value as a message quotes it: as JSON (null, "", 5, [1]), shortened and escaped."""
    if isinstance(value, _Number):
        text = value.text
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=lambda v: getattr(v, "text", "?"))
        except (ValueError, RecursionError):
            text = "..."
    return escape(shorten(text, 80))


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


class LineSource(Protocol):
    """What `read_lines` reads from: a binary file, or anything with its readline."""

    def readline(self, size: int = -1, /) -> bytes: ...


def read_lines(stream: LineSource) -> Iterator[str]:
    """The lines of a binary stream as text, read one at a time: each at most MAX_LINE_BYTES (without its line
    break), UTF-8 (a byte order mark opening the first line is skipped); else a RowError naming the line."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 2):
        number += 1
        content = raw[:-1] if raw.endswith(b"\n") else raw
        if len(content) > MAX_LINE_BYTES:
            raise RowError(number, f"the line is longer than {MAX_LINE_BYTES} bytes: not a ledger row")
        if number == 1 and content.startswith(b"\xef\xbb\xbf"):
            content = content[3:]
        try:
            yield content.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = content[exc.start]
            raise RowError(number, f"not UTF-8: invalid byte 0x{bad:02x} at byte {exc.start + 1} of the line") from None


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"the field {shown(name)} appears twice")
            seen.add(name)
    return row


def parse_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """JSON lines -> objects; row N is line N (a blank line is an error, as JSON lines has none)."""
    for number, line in enumerate(lines, 1):
        try:
            yield json.loads(
                line, parse_int=_Number, parse_float=_Number, parse_constant=_constant, object_pairs_hook=_object
            )
        except RecursionError:  # the C parser's bounded recursion, not a stack overflow
            raise RowError(number, "not valid JSON for a row: nested too deeply") from None
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise RowError(number, f"not valid JSON: {reason}") from None


def _parse_time(value: str, field: str, number: int) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RowError(number, f"{field}: not an ISO 8601 time: {shown(value)}") from None
    if moment.tzinfo is None:
        raise RowError(number, f"{field}: the time has no UTC offset: {shown(value)}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00, before the first representable UTC time
        raise RowError(number, f"{field}: the time is out of range: {shown(value)}") from None


def row_from_json(row: Mapping[str, Any], number: int) -> tuple[Target, LedgerEntry]:
    """Validate one exported row (`number` counts from 1, for the message) and turn it into values."""
    if not isinstance(row, Mapping):
        raise RowError(number, f"expected a JSON object, got {shown(row)}")
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise RowError(number, f"unknown field(s): {', '.join(shown(name) for name in unknown[:10])}")
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise RowError(number, f"missing field(s): {', '.join(missing)}")
    for name in (*REQUIRED, *OPTIONAL):
        value = row.get(name)
        if name in OPTIONAL and value is None:
            continue
        nonempty = name in ("key", "tenant_id", "address", "digest", "run_id")
        if not isinstance(value, str) or (nonempty and not value):
            expected = "a non-empty string" if nonempty else "a string"
            raise RowError(
                number, f"{name}: expected {expected}{' or null' if name in OPTIONAL else ''}, got {shown(value)}"
            )
        problem = unsafe_char_problem(value) if name in IDENTITIES else None
        if problem:
            raise RowError(number, f"{name}: {problem}")
    state = row["state"]
    if state not in RUN_STATES:
        raise RowError(number, f"state: expected one of {', '.join(RUN_STATES)}, got {shown(state)}")
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
