"""A trigger's own fields, checked as one item of its section is built: a cron's name, expression and `enabled`, a
schedule's `trigger_at`, an event's `scope`. Each failure is recorded with its location.

A schedule's time is only parsed here: whether it is in the past depends on when it is applied, not on the
manifest (a schedule that fired stays declared), so the plan judges it (plan/triggers.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hatchet_client import cronexpr

from hatchet_manifest.manifest.entries import Entry, ProblemLog
from hatchet_manifest.manifest.validate import describe
from hatchet_manifest.text import escape

MAX_SCOPE_LEN = 255


def rfc3339(value: Any) -> tuple[datetime | None, str | None]:
    """(the UTC time, None) or (None, the problem) for an RFC 3339 date-time with an offset."""
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as one
        moment = value
    elif isinstance(value, str):
        try:
            if "T" not in value.upper():
                raise ValueError(value)
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None, f"must be an RFC 3339 date-time such as 2027-01-01T09:00:00Z, got {escape(value[:60])!r}"
    else:
        return None, f"must be an RFC 3339 date-time such as 2027-01-01T09:00:00Z, got {describe(value)}"
    if moment.tzinfo is None:
        return None, "needs an offset (Z for UTC, or +02:00): a time without one means nothing to the engine"
    return moment.astimezone(UTC), None


def utc_text(moment: datetime) -> str:
    """The canonical spelling of a trigger time: UTC, `Z`, milliseconds when there are any."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def trigger_fields(entry: Entry, values: list[Any], where: str, log: ProblemLog) -> dict[str, Any] | None:
    """The checked fields of one trigger of `entry` (its section's TRIGGER_FIELDS), or None after recording
    their problems."""
    built = {name: tree.build(values) for name, tree in entry.extra.items()}
    out: dict[str, Any] = {}
    ok = True

    def problem(name: str, message: str) -> None:
        nonlocal ok
        log.at(entry, where, name, message, (name,))
        ok = False

    if entry.section == "crons":
        expression = built.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            problem("expression", f"must be a cron expression (a string), got {describe(expression)}")
        else:
            try:
                cronexpr.parse(expression)
            except cronexpr.CronExpressionError as exc:
                problem("expression", str(exc))
            out["expression"] = expression.strip()
        enabled = built.get("enabled", True)
        if not isinstance(enabled, bool):
            problem("enabled", f"must be true or false, got {describe(enabled)}")
        out["enabled"] = enabled
    elif entry.section == "schedules":
        moment, error = rfc3339(built.get("trigger_at"))
        if error or moment is None:
            problem("trigger_at", error or "is missing")
        else:
            out["trigger_at"] = utc_text(moment)
        out["allow_past"] = entry.allow_past
    elif entry.section == "events":
        scope = built.get("scope")
        if scope is not None and (not isinstance(scope, str) or not scope or len(scope) > MAX_SCOPE_LEN):
            problem("scope", f"must be a non-empty string of at most {MAX_SCOPE_LEN} characters, got {describe(scope)}")
        elif isinstance(scope, str) and not scope.isprintable():
            problem("scope", f"must be printable, got {escape(scope)!r}")
        else:
            out["scope"] = scope
    return out if ok else None
