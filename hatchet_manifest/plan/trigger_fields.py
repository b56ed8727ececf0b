"""How a declared trigger compares with an account of it (the engine's, the git base's), field by field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hatchet_client.config import apply_namespace

from hatchet_manifest.manifest.rendered import RenderedRun

if TYPE_CHECKING:
    from hatchet_manifest.plan.planner import Known


def _expression(text: Any) -> str:
    return " ".join(str(text).split()).lower()


def changes(run: RenderedRun, known: Known, namespace: str = "") -> list[str]:
    """The fields in which a declared trigger differs from what is known of it (the engine's or the git base's
    account, which say its fields; []: the same). A priority left unset is not compared (the engine's default)."""
    assert run.trigger is not None and known.trigger is not None
    out: list[str] = []
    name = apply_namespace(run.workflow_name, namespace) if namespace else run.workflow_name
    if known.workflow_name not in (name, run.workflow_name):
        out.append("event_key" if run.kind == "event" else "workflow_name")
    if known.input != run.input:
        out.append("payload" if run.kind == "event" else "input")
    if known.additional_metadata != run.additional_metadata:
        out.append("additional_metadata")
    if run.priority is not None and known.priority is not None and known.priority != run.priority:
        out.append("priority")
    for field_name, value in run.trigger.items():
        if field_name == "allow_past" or field_name not in known.trigger:
            continue
        held = known.trigger[field_name]
        same = _expression(held) == _expression(value) if field_name == "expression" else held == value
        if not same:
            out.append(field_name)
    return out


def replacement_needed(fields: list[str]) -> bool:
    """Whether a changed cron must be replaced (deleted and created): anything but `enabled` changed."""
    return any(f != "enabled" for f in fields)


def in_the_past(run: RenderedRun, now: datetime | None = None) -> bool:
    """A schedule whose time has passed (and that does not allow it)."""
    if run.kind != "schedule" or run.trigger is None or run.trigger.get("allow_past"):
        return False
    at = datetime.fromisoformat(str(run.trigger["trigger_at"]).replace("Z", "+00:00"))
    return at <= (now or datetime.now(UTC))
