"""What rendering produces: runs with their identity and origin, and the limits they are rendered under."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.validate import MAX_REQUEST_BYTES

MAX_TEMPLATE_BYTES = 16 << 20

# The sections that declare triggers, the kind each declares, and the prefix of its keys: a trigger's key is
# `<kind>:<name or key>`, apart from every run key (run keys may not start with a kind and a colon).
TRIGGER_KINDS = {"crons": "cron", "schedules": "schedule", "events": "event"}
KEY_PREFIXES = tuple(f"{kind}:" for kind in TRIGGER_KINDS.values())


def kind_of_key(key: str) -> str:
    """The kind ("run", "cron", "schedule", "event") of a planned or recorded key."""
    if key.startswith(KEY_PREFIXES):
        return key.split(":", 1)[0]
    return "run"


@dataclass(frozen=True)
class Limits:
    max_runs: int = 100_000
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_template_bytes: int = MAX_TEMPLATE_BYTES
    max_problems: int = 100
    access: Access = field(
        default_factory=Access
    )  # the environment variables env() and secret() may read (none by default)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, five times slower to build, and a
# million runs are built per million-run render. Nothing changes a run once built.
@dataclass(slots=True)
class RenderedRun:
    """One run, exactly as `run_workflows` takes it, with its identity and origin.

    `input` and `additional_metadata` show secrets as `***`; `secret_input`/`secret_metadata` hold the real
    values when the run uses `secret()` and the render was asked to reveal them (only for submission).
    """

    key: str
    workflow_name: str
    input: dict[str, Any]
    additional_metadata: dict[str, str]
    priority: int | None
    manifest: str
    file: str
    line: int
    where: str
    secret_input: dict[str, Any] | None = None
    secret_metadata: dict[str, str] | None = None
    uses_secret: bool = False  # its entry calls secret(), revealed or not
    kind: str = "run"  # "run", or the trigger it is: "cron", "schedule", "event" (see TRIGGER_KINDS)
    trigger: dict[str, Any] | None = None  # a trigger's own fields (cron: name, expression, enabled; ...)

    def to_dict(self) -> dict[str, Any]:
        """The preview shape: {key, workflow_name, input, options: {additional_metadata, priority?}}; a trigger
        adds {kind, <its fields>} (an event names no workflow: its `event_key` instead)."""
        options: dict[str, Any] = {"additional_metadata": self.additional_metadata}
        if self.priority is not None:
            options["priority"] = self.priority
        out = {"key": self.key, "workflow_name": self.workflow_name, "input": self.input, "options": options}
        if self.trigger is not None:
            out = {"key": self.key, "kind": self.kind, **self.trigger, **out}
            if self.kind == "event":
                del out["workflow_name"]
                out["payload"] = out.pop("input")
        return out

    def workflow_run(self, reveal: bool = False, stamps: dict[str, str] | None = None) -> dict[str, Any]:
        """The SDK's WorkflowRun dict; with reveal, secrets are real; `stamps` are added to the metadata."""
        metadata = self.secret_metadata if reveal and self.secret_metadata is not None else self.additional_metadata
        if stamps:
            metadata = {**metadata, **stamps}
        options: dict[str, Any] = {"additional_metadata": metadata}
        if self.priority is not None:
            options["priority"] = self.priority
        data = self.secret_input if reveal and self.secret_input is not None else self.input
        return {"workflow_name": self.workflow_name, "input": data, "options": options}


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_SORTED = orjson.OPT_SORT_KEYS


def _standard_encoder() -> Callable[[Any], str]:
    """_ENCODER.encode, without its per-call Python layers when the C encoder is there. Rendered values cannot
    be circular, so no circular check is needed."""
    if _C_MAKE_ENCODER is None:
        return _ENCODER.encode
    c_encode = _C_MAKE_ENCODER(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, True
    )

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


_standard = _standard_encoder()


def canonical_json(value: Any) -> bytes:
    """The canonical JSON text of a rendered (validated) value, UTF-8: sorted keys, compact, non-ASCII as is.

    orjson writes it; what orjson refuses (integers beyond 64 bits, nesting deeper than 255) is written by the
    standard encoder with the same options. The two agree on everything but the spelling of some floats
    (orjson writes 0.00001 where json writes 1e-05), and a given value always takes the same path, so a run's
    digest is stable."""
    try:
        return orjson.dumps(value, option=_SORTED)
    except TypeError:  # orjson.JSONEncodeError
        return _standard(value).encode()


@functools.lru_cache(maxsize=1024)
def _name_json(workflow_name: str) -> bytes:
    return canonical_json(workflow_name)


def json_digest(workflow_name: str, input_json: bytes, metadata_json: bytes) -> str:
    """content_digest from the canonical JSON of the input and of the metadata, made already."""
    parts = (b"[", _name_json(workflow_name), b",", input_json, b",", metadata_json, b"]")
    return hashlib.sha256(b"".join(parts)).hexdigest()


def content_digest(workflow_name: str, input: dict[str, Any], metadata: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (`canonical_json`) of the list [name, input, metadata]: the digest plans
    compare, and the tail of default keys."""
    return json_digest(workflow_name, canonical_json(input), canonical_json(metadata))
