"""The format of a saved plan: its names, bounds and layout, its strict shapes (pydantic: exact types, no unknown
field, known actions), the seal (`plan_digest`, computed over the header, every run and the trailer), and the
bounded JSON parsing of its pieces. Shared by writing and recognising (planfile.py) and reading (planverify.py,
planread.py); the format itself is described in planfile.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from hatchet_manifest.ledger import Target
from hatchet_manifest.manifest.rendered import canonical_json
from hatchet_manifest.manifest.validate import json_depth_over
from hatchet_manifest.plan.planner import Action

API_VERSION = "hatchet-manifest/v1"
KIND = "Plan"
OLD_FORMAT = "hatchet-manifest-plan/v1"  # plans of hatchet-manifest 0.1.0 (no digest): refused

MAX_PLAN_BYTES = 4 << 30
MAX_LINE_BYTES = 16 << 20  # a run is at most a 4 MiB request; its JSON line, escapes included, fits
MAX_WHOLE_BYTES = 32 << 20  # a plan not in the layout `diff --out` writes is parsed whole, up to this size
MAX_DEPTH = 128  # a run record and the values in it
MAX_PROBLEMS = 20
MODIFIED = "the plan file was modified after it was written"

RUNS_OPEN = b',"runs":['
TRAILER_FIELDS = ("summary", "ledger_digest", "plan_digest")
_DIGEST_SEED = b"hatchet-manifest plan v1\n"
LAYOUT_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def tool_version() -> str:
    return version("hatchet-manifest")


@dataclass(frozen=True)
class PlanHeader:
    tool_version: str
    target: Target | None
    namespace: str
    created_at: str


# -- the strict shapes -----------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class _TargetModel(_Strict):
    tenant_id: str = Field(min_length=1, max_length=1024)
    address: str = Field(min_length=1, max_length=4096)


class HeaderModel(_Strict):
    api_version: Literal["hatchet-manifest/v1"] = Field(alias="apiVersion")
    kind: Literal["Plan"]
    tool_version: str = Field(max_length=100)
    target: _TargetModel | None
    namespace: str = Field(max_length=1024)
    created_at: str = Field(max_length=64)


class RunModel(_Strict):
    key: str
    action: Action
    workflow_name: str | None = None  # an event names none: its event_key
    input: dict[str, Any] | None = None  # an event's: its payload
    additional_metadata: dict[str, str] | None
    priority: int | None = None
    manifest: str
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    run_id: str | None = Field(default=None, min_length=1, max_length=1024)
    secret: Literal[True] | None = None
    # crons, schedules and events (PlannedRun.to_dict): their kind, own fields, what changed, their engine ids
    kind: Literal["cron", "schedule", "event"] | None = None
    name: str | None = Field(default=None, max_length=1024)
    expression: str | None = Field(default=None, max_length=1000)
    enabled: bool | None = None
    next: list[str] | None = Field(default=None, max_length=10)
    trigger_at: str | None = Field(default=None, max_length=64)
    allow_past: bool | None = None
    event_key: str | None = Field(default=None, max_length=1024)
    payload: dict[str, Any] | None = None
    scope: str | None = Field(default=None, max_length=255)
    changes: list[str] | None = Field(default=None, max_length=20)
    id: str | None = Field(default=None, min_length=1, max_length=1024)
    ids: list[str] | None = Field(default=None, max_length=1000)

    def trigger(self) -> dict[str, Any] | None:
        """A trigger's own fields, as RenderedRun.trigger holds them (None for a run)."""
        if self.kind == "cron":
            return {"name": self.name, "expression": self.expression, "enabled": self.enabled}
        if self.kind == "schedule":
            return {"trigger_at": self.trigger_at, "allow_past": bool(self.allow_past)}
        if self.kind == "event":
            return {"event_key": self.event_key, "scope": self.scope}
        return None

    def as_run(self) -> RunModel:
        """An event's record with its key and payload where a run's workflow and input are."""
        if self.kind != "event":
            return self
        return self.model_copy(update={"workflow_name": self.event_key, "input": self.payload})


class TrailerModel(_Strict):
    summary: dict[Action, int]
    ledger_digest: str | None = Field(max_length=256)
    plan_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


# -- the seal ------------------------------------------------------------------------------------------------------


def header_digest(header: dict[str, Any]) -> Any:
    h = hashlib.sha256(_DIGEST_SEED)
    h.update(canonical_json(header))
    h.update(b"\n")
    return h


def trailer_json(trailer: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in trailer.items() if k != "plan_digest"})


# -- parsing -------------------------------------------------------------------------------------------------------


def layout_header(first: bytes) -> dict[str, Any] | None:
    """The header of a plan in the layout `diff --out` writes, from its first line; None when it is not one."""
    line = first.rstrip(b"\r\n")
    if not line.startswith(b"{") or not line.endswith(RUNS_OPEN):
        return None
    head, error = parse_bounded(line[: -len(RUNS_OPEN)] + b"}")
    return head if error is None and isinstance(head, dict) else None


def is_plan_object(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == KIND or obj.get("format") == OLD_FORMAT


def loads(data: bytes) -> Any:
    """json.loads refusing NaN and Infinity (not JSON); raises ValueError or RecursionError."""
    return json.loads(data, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_bounded(data: bytes, depth: int = MAX_DEPTH) -> tuple[Any, str | None]:
    """(value, None), or (None, what is wrong): not JSON, or nested deeper than `depth`."""
    try:
        value = loads(data)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"
    except RecursionError:
        return None, f"values nested deeper than {depth} levels"
    if json_depth_over(value, depth):
        return None, f"values nested deeper than {depth} levels"
    return value, None


TOO_LONG = b"\x00too long\x00"


def read_lines(f: BinaryIO, raw: Any) -> Iterator[tuple[int, bytes]]:
    """(number, line) of a file, each at most MAX_LINE_BYTES (a longer one is skipped and yielded as TOO_LONG);
    every byte read goes into `raw`."""
    lineno = 0
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        raw.update(line)
        lineno += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = f.readline(1 << 20)
                raw.update(line)
            yield lineno, TOO_LONG
            continue
        yield lineno, line
