"""Saved plans (`diff --out plan.json`, `apply plan.json`).

A plan file is one JSON document, written a run per line so that a plan of a million runs is written and read
back in constant memory:

    {"apiVersion":"hatchet-manifest/v1","kind":"Plan","tool_version":...,"target":{...},"namespace":...,...,"runs":[
    {"action":"create","digest":...,"key":...,...},
    ...
    ],"summary":{...},"ledger_digest":"...","plan_digest":"sha256:..."}

Nothing in a plan handed back to `apply` is trusted:
- it is recognised by its content: a JSON object whose `apiVersion` and `kind` are a plan's, whatever its
  formatting (a plan re-serialised by `json.dump` is read whole, up to MAX_WHOLE_BYTES);
- it is bounded: at most MAX_PLAN_BYTES (checked before reading), lines of at most MAX_LINE_BYTES, values nested
  at most MAX_DEPTH deep;
- it is validated strictly (pydantic, exact types, no unknown field, known actions; each run's digest must be
  that of its content, its key and workflow name valid, the summary the count of its runs), every problem
  reported with the file and line;
- it is integrity-checked as a whole: `plan_digest` is the sha256 of the canonical JSON of the header, of every
  run in order and of the trailer (summary, ledger_digest), computed as the plan is written and checked when it
  is read, before anything in it is used. Any edit (a run changed, added, removed or moved, the header, the
  summary, the digest itself) is refused with MODIFIED. Later passes over the file (the ledger check, the runs
  sent) check that its bytes are still those verified.

The digest is an integrity check against accidental and casual edits, not authentication: whoever can write the
file can recompute it (see the README).

Plans never hold secret values: runs that use secret() are saved masked and flagged, and `apply` refuses them.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from hatchet_manifest import scrub
from hatchet_manifest.errors import ConfigError
from hatchet_manifest.ledger import Target
from hatchet_manifest.manifest.rendered import canonical_json
from hatchet_manifest.plan.planformat import (
    API_VERSION,
    KIND,
    LAYOUT_ENCODER,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    MAX_PLAN_BYTES,
    MAX_PROBLEMS,
    MAX_WHOLE_BYTES,
    MODIFIED,
    OLD_FORMAT,
    RUNS_OPEN,
    PlanHeader,
    header_digest,
    is_plan_object,
    layout_header,
    parse_bounded,
    tool_version,
    trailer_json,
)
from hatchet_manifest.plan.planner import PlannedRun
from hatchet_manifest.plan.planread import PlanFile

__all__ = [
    "API_VERSION",
    "KIND",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "MAX_PLAN_BYTES",
    "MAX_PROBLEMS",
    "MAX_WHOLE_BYTES",
    "MODIFIED",
    "OLD_FORMAT",
    "ConfigError",
    "PlanFile",
    "PlanHeader",
    "PlanWriter",
    "find_plan",
    "tool_version",
]

# -- writing -----------------------------------------------------------------------------------------------------


class PlanWriter:
    """Writes a plan as it is computed (to `<path>.tmp`, renamed into place by `finish`), digest included."""

    def __init__(self, path: Path, target: Target | None, namespace: str) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")
        try:
            self._file: BinaryIO = self._tmp.open("wb")
        except OSError as exc:
            raise ConfigError(f"--out {path}: cannot write the plan: {exc.strerror or exc}") from None
        header = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "tool_version": tool_version(),
            "target": target.to_dict() if target else None,
            "namespace": namespace,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._digest = header_digest(header)
        self._file.write(LAYOUT_ENCODER.encode(header).encode()[:-1] + RUNS_OPEN + b"\n")
        self._first = True

    def add(self, p: PlannedRun) -> None:
        record = p.to_dict()
        if p.run is not None and p.run.uses_secret:
            record["secret"] = True
        if scrub.registered():  # a secret's value (from --set, a values file) is never saved: masked, run flagged
            clean = scrub.scrub_any(record)
            if clean != record:
                record = {**clean, "secret": True}
        line = canonical_json(record)
        self._digest.update(line + b"\n")
        self._file.write(line if self._first else b",\n" + line)
        self._first = False

    def finish(self, summary: dict[str, int], digest_of: Callable[[Iterator[str]], str] | None) -> None:
        """Append the trailer (with `digest_of(keys)`, the ledger state the plan was computed against, and the
        plan's own digest) and move the plan into place."""
        self._file.flush()
        ledger_digest = digest_of(_written_keys(self._tmp)) if digest_of is not None else None
        trailer: dict[str, Any] = {"summary": dict(summary), "ledger_digest": ledger_digest}
        self._digest.update(trailer_json(trailer))
        trailer["plan_digest"] = "sha256:" + self._digest.hexdigest()
        self._file.write((b"" if self._first else b"\n") + b"]," + LAYOUT_ENCODER.encode(trailer).encode()[1:] + b"\n")
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def _written_keys(path: Path) -> Iterator[str]:
    """The keys of the runs written so far to our own temporary plan file."""
    with path.open("rb") as f:
        f.readline()
        for line in f:
            yield json.loads(line.rstrip(b"\n").removesuffix(b","))["key"]


# -- recognising ---------------------------------------------------------------------------------------------------


def find_plan(paths: Sequence[str]) -> PlanFile | None:
    """The saved plan `paths` name, read and verified; None when they name manifests.

    Recognised by content, not by name: a JSON object whose `kind` is a plan's. Raises ConfigError for an empty
    file, for a JSON document that is neither a plan nor a manifest, and for a plan given with other paths."""
    plans = [p for p in paths if _sniff(Path(p)) == "plan"]
    if not plans:
        return None
    if len(paths) > 1:
        raise ConfigError(f"{plans[0]}: a saved plan is applied on its own, not with other paths")
    return PlanFile(Path(plans[0]))


def _sniff(path: Path) -> Literal["plan", "manifest"]:
    try:
        info = path.stat()
    except OSError:
        return "manifest"  # the loader says what is wrong with it
    if not stat.S_ISREG(info.st_mode):
        return "manifest"
    with path.open("rb") as f:
        head = f.read(65536)
    if not head.strip() and info.st_size <= len(head):
        raise ConfigError(f"{path}: the file is empty: it is neither a saved plan nor a manifest")
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    is_json_name = path.suffix.lower() == ".json"
    if not text.startswith(b"{"):
        if is_json_name and text.startswith(b"["):
            raise ConfigError(f"{path}: a JSON list is neither a saved plan nor a manifest")
        return "manifest"
    first = head.split(b"\n", 1)[0] if b"\n" in head else b""
    layout = layout_header(first)
    if layout is not None:
        return "plan" if is_plan_object(layout) else "manifest"
    if info.st_size > MAX_WHOLE_BYTES:
        if is_json_name:
            raise ConfigError(
                f"{path}: not a saved plan in the layout `diff --out` writes, and too large ({info.st_size} bytes) "
                f"to be read whole (at most {MAX_WHOLE_BYTES})"
            )
        return "manifest"
    obj, error = parse_bounded(path.read_bytes(), MAX_DEPTH + 2)
    if error is not None:
        if not is_json_name:
            return "manifest"  # a YAML flow mapping, perhaps: the loader says what is wrong with it
        raise ConfigError(f"{path}: {error}: neither a saved plan nor a manifest")
    if isinstance(obj, dict) and is_plan_object(obj):
        return "plan"
    if isinstance(obj, dict) and obj.get("kind") == "TriggerManifest":
        return "manifest"
    raise ConfigError(
        f"{path}: a JSON document that is neither a saved plan (kind: {KIND}) nor a manifest (kind: TriggerManifest)"
    )
