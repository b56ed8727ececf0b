"""Saved plans (`diff --out plan.json`, `apply plan.json`).

A plan file is one JSON document written a run per line, so that a plan of a million runs is written and
read back in constant memory:

    {"format":"hatchet-manifest-plan/v1","tool_version":...,"target":{...},"namespace":...,"created_at":...,"runs":[
    {"key":...,"action":"create",...},
    ...
    ],"summary":{...},"ledger_digest":"sha256:..."}

Plans never hold secret values: runs that use secret() are saved masked and flagged, and `apply` refuses them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hatchet_manifest.errors import ConfigError
from hatchet_manifest.ledger import Ledger, Target
from hatchet_manifest.manifest.rendered import RenderedRun
from hatchet_manifest.plan.planner import Known, PlannedRun

FORMAT = "hatchet-manifest-plan/v1"
_RUNS_OPEN = ',"runs":['
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def tool_version() -> str:
    return version("hatchet-manifest")


def is_plan_file(path: str) -> bool:
    if not path.endswith(".json") or not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        return f.read(64).startswith('{"format":"' + FORMAT)


@dataclass(frozen=True)
class PlanHeader:
    tool_version: str
    target: Target | None
    namespace: str
    created_at: str


class PlanWriter:
    def __init__(self, path: Path, target: Target | None, namespace: str) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")
        self._file = self._tmp.open("w", encoding="utf-8")
        header = {
            "format": FORMAT,
            "tool_version": tool_version(),
            "target": target.to_dict() if target else None,
            "namespace": namespace,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._file.write(_ENCODER.encode(header)[:-1] + _RUNS_OPEN + "\n")
        self._first = True

    def add(self, p: PlannedRun) -> None:
        record = p.to_dict()
        if p.run is not None and p.run.uses_secret:
            record["secret"] = True
        self._file.write(("" if self._first else ",\n") + _ENCODER.encode(record))
        self._first = False

    def finish(self, summary: dict[str, int], digest_of: Callable[[Iterator[str]], str] | None) -> None:
        """Append the trailer (with `digest_of(keys)`, the ledger state the plan was computed against)."""
        self._file.flush()
        digest = digest_of(_keys(self._tmp)) if digest_of is not None else None
        trailer = {"summary": summary, "ledger_digest": digest}
        self._file.write("\n]," + _ENCODER.encode(trailer)[1:] + "\n")
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class PlanFile:
    """A saved plan, read lazily."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open(encoding="utf-8") as f:
                first = f.readline()
            last = _last_line(path)
            if not first.startswith('{"format":"' + FORMAT) or not first.rstrip("\n").endswith(_RUNS_OPEN):
                raise ValueError("not a hatchet-manifest plan")
            head = json.loads(first.rstrip("\n")[: -len(_RUNS_OPEN)] + "}")
            tail = json.loads("{" + last.rstrip("\n")[2:])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable {FORMAT} plan file ({exc})") from None
        t = head.get("target")
        self.header = PlanHeader(
            head["tool_version"],
            Target(t["tenant_id"], t["address"]) if t else None,
            head["namespace"],
            head["created_at"],
        )
        self.summary: dict[str, int] = tail["summary"]
        self.ledger_digest: str | None = tail["ledger_digest"]

    def records(self) -> Iterator[dict[str, Any]]:
        return _records(self.path)

    def planned(self) -> Iterator[PlannedRun]:
        for rec in self.records():
            if rec.get("secret"):
                raise ConfigError(
                    f"{self.path}: run {rec['key']!r} uses secret(); plans never hold secret values, "
                    "so apply the manifests instead of the plan"
                )
            if rec["action"] == "removed":
                yield PlannedRun("removed", rec["key"], rec["digest"], None, None)
                continue
            metadata = rec["additional_metadata"]
            run = RenderedRun(
                rec["key"],
                rec["workflow_name"],
                rec["input"],
                metadata,
                rec.get("priority"),
                rec["manifest"],
                str(self.path),
                0,
                "",
            )
            known = Known(rec["key"], "", "submitted", rec.get("run_id")) if rec.get("run_id") else None
            yield PlannedRun(rec["action"], rec["key"], rec["digest"], run, known)

    def keys(self) -> Iterator[str]:
        return _keys(self.path)

    def check_fresh(self, ledger: Ledger, target: Target) -> None:
        """Refuse a plan made for another target, or computed against a ledger state that has changed since."""
        if self.header.target is None:
            raise ConfigError(f"{self.path}: this plan was made against a git base, not a target; it cannot be applied")
        if self.header.target != target:
            raise ConfigError(f"{self.path}: this plan is for target {self.header.target}, not {target}")
        if ledger.state_digest(target, self.keys()) != self.ledger_digest:
            raise ConfigError(
                f"{self.path}: the plan is stale: the ledger changed for its runs since it was made; run diff again"
            )


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        f.readline()
        for line in f:
            if line.startswith("],"):
                return
            yield json.loads(line.rstrip("\n").rstrip(","))


def _keys(path: Path) -> Iterator[str]:
    return (rec["key"] for rec in _records(path))


def _last_line(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read().decode("utf-8")
    return tail.rstrip("\n").rsplit("\n", 1)[-1]
