"""Reading a saved plan: `PlanFile` opens it (bounded, then verified whole by the pass of planverify.py before
anything in it is used), then reads it lazily (records, keys, the planned runs), checking that its bytes are still
those verified, and refuses a plan made for another target or namespace or a changed ledger (`check_fresh`).
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hatchet_manifest.errors import ConfigError, ManifestError, Problem
from hatchet_manifest.ledger import Ledger, Target
from hatchet_manifest.plan.planformat import (
    MAX_LINE_BYTES,
    MAX_PLAN_BYTES,
    MAX_PROBLEMS,
    MAX_WHOLE_BYTES,
    MODIFIED,
    OLD_FORMAT,
    PlanHeader,
    layout_header,
    loads,
    read_lines,
    tool_version,
)
from hatchet_manifest.plan.planner import Action, Known, PlannedRun
from hatchet_manifest.plan.planverify import PlanVerifier
from hatchet_manifest.text import quote


class PlanFile(PlanVerifier):
    """A saved plan, verified as a whole when opened (raises ManifestError or ConfigError), then read lazily."""

    def __init__(self, path: Path) -> None:
        try:
            info = path.stat()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the plan: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if info.st_size == 0:
            raise ConfigError(f"{path}: the file is empty: it is neither a saved plan nor a manifest")
        if info.st_size > MAX_PLAN_BYTES:
            raise ConfigError(f"{path}: {info.st_size} bytes, larger than a plan may be ({MAX_PLAN_BYTES} bytes)")
        super().__init__(path)
        with path.open("rb") as f:
            first = f.readline(MAX_LINE_BYTES + 1)
        head = layout_header(first)
        if head is not None:
            if head.get("format") == OLD_FORMAT:
                self._old_format()
            self._scan_layout()
        elif info.st_size > MAX_WHOLE_BYTES:
            raise ConfigError(
                f"{path}: not a saved plan in the layout `diff --out` writes, and too large ({info.st_size} bytes) "
                f"to be read whole (at most {MAX_WHOLE_BYTES}); {MODIFIED}?"
            )
        else:
            self._scan_whole()
        self._conclude()

    def _conclude(self) -> None:
        """Raise what the verifying pass found, integrity first; then the checks that need a sound plan."""
        problems = list(self._problems)
        count = self._problem_count
        if self._integrity is not None:
            problems.insert(
                0, Problem(self._shown, None, f"{MODIFIED} ({self._integrity}); make a new plan with `diff --out`")
            )
            count += 1
        if problems:
            raise ManifestError.of(problems[:MAX_PROBLEMS], count)
        assert self._header is not None and self._trailer is not None
        head = self._header
        if head["tool_version"] != tool_version():
            raise ConfigError(
                f"{self.path}: written by hatchet-manifest {quote(head['tool_version'])}, this is {tool_version()}: "
                "make a new plan with `diff --out`"
            )
        t = head["target"]
        self.header = PlanHeader(
            head["tool_version"],
            Target(t["tenant_id"], t["address"]) if t else None,
            head["namespace"],
            head["created_at"],
        )
        self.summary: dict[str, int] = dict(self._trailer["summary"])
        self.ledger_digest: str | None = self._trailer["ledger_digest"]

    # -- later passes ------------------------------------------------------------------------------------------

    def _records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line, record) of every run, from a file whose bytes must still be those verified."""
        if self._whole is not None:
            yield from ((0, rec) for _, rec in self._whole)
            return
        raw = hashlib.sha256()
        ended = False
        with self.path.open("rb") as f:
            for lineno, line in read_lines(f, raw):
                if lineno == 1 or ended:
                    continue
                if line.startswith(b"],"):
                    ended = True
                    continue
                yield lineno, loads(line.rstrip(b"\r\n").removesuffix(b","))
        if raw.hexdigest() != self._raw_digest:
            raise ConfigError(f"{self.path}: {MODIFIED} (it changed while it was being read); make a new plan")

    def records(self) -> Iterator[dict[str, Any]]:
        return (rec for _, rec in self._records())

    def keys(self) -> Iterator[str]:
        return (rec["key"] for _, rec in self._records())

    def planned(self) -> Iterator[PlannedRun]:
        """The saved runs. Refuses a plan with runs that use secret() (their values are not in it)."""
        if self._secret_count:
            raise ConfigError(
                f"{self.path}: {self._secret_count} run(s) use secret(), {quote(self._secret_keys[0])} first; plans "
                "never hold secret values, so apply the manifests instead of the plan"
            )
        return self._planned()

    def _planned(self) -> Iterator[PlannedRun]:
        for index, (line, rec) in enumerate(self._records()):
            action: Action = rec["action"]
            ident = rec.get("run_id") or rec.get("id")
            known = Known(rec["key"], "", "submitted", ident, rec.get("manifest", "")) if ident else None
            changes = tuple(rec.get("changes") or ())
            held = tuple(Known(rec["key"], "", "submitted", i, rec.get("manifest", "")) for i in rec.get("ids") or ())
            if action == "removed":
                yield PlannedRun("removed", rec["key"], rec["digest"], None, known, changes, held)
                continue
            run = self._rendered(rec, line, f"runs[{index}]")
            yield PlannedRun(action, rec["key"], rec["digest"], run, known, changes, held)

    def check_fresh(self, ledger: Ledger, target: Target, namespace: str) -> None:
        """Refuse a plan made for another target or namespace, or computed against a ledger state that has
        changed since."""
        if self.header.target is None:
            raise ConfigError(f"{self.path}: this plan was made against a git base, not a target; it cannot be applied")
        if self.header.target != target:
            raise ConfigError(f"{self.path}: this plan is for target {self.header.target}, not {target}")
        if self.header.namespace != namespace:
            raise ConfigError(
                f"{self.path}: this plan was made for the namespace {quote(self.header.namespace)}, "
                f"not {quote(namespace)} (HATCHET_CLIENT_NAMESPACE)"
            )
        if ledger.state_digest(target, self.keys()) != self.ledger_digest:
            raise ConfigError(
                f"{self.path}: the plan is stale: the ledger changed for its runs since it was made; run diff again"
            )
