"""The verifying pass over a saved plan: its pieces validated against the strict shapes of planformat.py, every run
checked (its key, names, priority, and its digest against its content), duplicate keys, the summary, and the seal
recomputed, every problem collected with its file and line. `PlanVerifier` is the base of `planread.PlanFile`, which
chooses the scan and concludes.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hatchet_manifest.errors import ConfigError, Problem
from hatchet_manifest.manifest.keyset import KeySet
from hatchet_manifest.manifest.model import NAME_PATTERN
from hatchet_manifest.manifest.rendered import RenderedRun, canonical_json, kind_of_key
from hatchet_manifest.manifest.validate import check_key, check_priority, check_workflow_name, json_depth_over
from hatchet_manifest.plan.planformat import (
    KIND,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    MAX_PROBLEMS,
    MODIFIED,
    OLD_FORMAT,
    TOO_LONG,
    TRAILER_FIELDS,
    HeaderModel,
    RunModel,
    TrailerModel,
    header_digest,
    is_plan_object,
    layout_header,
    parse_bounded,
    read_lines,
    trailer_json,
)
from hatchet_manifest.plan.planner import ACTIONS, run_digest
from hatchet_manifest.text import quote, unsafe_char_problem

_NAME = re.compile(NAME_PATTERN)
_BATCH = 1000

# -- the verifying pass ------------------------------------------------------------------------------------------


class PlanVerifier:
    """The state and checks of the verifying pass over the plan at `path` (see planread.PlanFile)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._shown = str(path)
        self._whole: list[tuple[int, Any]] | None = None  # the runs of a plan read whole
        self._problems: list[Problem] = []
        self._problem_count = 0
        self._integrity: str | None = None
        self._raw_digest = ""
        self._counts: Counter[str] = Counter()
        self._secret_keys: list[str] = []
        self._secret_count = 0
        self._header: dict[str, Any] | None = None
        self._trailer: dict[str, Any] | None = None
        self._namespace: str | None = None

    def _problem(self, line: int | None, message: str, where: str = "", path: str = "") -> None:
        self._problem_count += 1
        if len(self._problems) < MAX_PROBLEMS:
            self._problems.append(Problem(self._shown, line, message, where, path))

    def _modified(self, reason: str) -> None:
        if self._integrity is None:
            self._integrity = reason

    def _old_format(self) -> None:
        raise ConfigError(
            f"{self.path}: a plan written by an earlier hatchet-manifest (format {OLD_FORMAT}, without a digest); "
            "make a new one with `diff --out`"
        )

    def _scan_layout(self) -> None:
        digest: Any = None
        raw = hashlib.sha256()
        keys = KeySet()
        batch: list[tuple[int | None, int, str]] = []
        try:
            with self.path.open("rb") as f:
                lineno = 0
                index = 0
                pending: tuple[int, bytes] | None = None  # a run line, checked once the next line shows its comma
                ended = False
                for lineno, line in read_lines(f, raw):
                    if lineno == 1:
                        header = layout_header(line) if line is not TOO_LONG else None
                        if header is None:  # the caller saw one: the file changed under us
                            raise ConfigError(f"{self.path}: {MODIFIED} (it changed while it was being read)")
                        digest = self._check_header(header, 1)
                        continue
                    if ended:
                        if line.strip():
                            self._problem(lineno, "not valid JSON: there is more after the end of the plan")
                            self._modified("there is more after the end of the plan")
                        continue
                    body = line.rstrip(b"\r\n")
                    if pending is not None:
                        plineno, pbody = pending
                        last = body.startswith(b"],")
                        if last == pbody.endswith(b","):
                            self._problem(
                                plineno, "not valid JSON: " + ("a ',' before ']'" if last else "a missing ','")
                            )
                            self._modified("it is not valid JSON")
                        self._check_run(pbody.removesuffix(b","), plineno, index, digest, batch)
                        index += 1
                        pending = None
                        if len(batch) >= _BATCH:
                            self._check_duplicates(keys, batch)
                    if body.startswith(b"],"):
                        self._check_trailer_text(b"{" + body[2:], lineno, digest)
                        ended = True
                    elif line is TOO_LONG:
                        self._problem(lineno, f"the line is longer than {MAX_LINE_BYTES} bytes", f"runs[{index}]")
                        self._modified("it holds a line longer than any plan writes")
                        index += 1
                    else:
                        pending = (lineno, body)
                if pending is not None:  # the last line was a run: the trailer is missing
                    self._check_run(pending[1].removesuffix(b","), pending[0], index, digest, batch)
                if not ended:
                    self._problem(lineno or None, 'the plan ends before its trailer (`],"summary":...`): truncated')
                    self._integrity = "it is truncated"  # the likeliest cause of what else went wrong
                self._check_duplicates(keys, batch)
        finally:
            keys.close()
        self._raw_digest = raw.hexdigest()

    def _scan_whole(self) -> None:
        data = self.path.read_bytes()
        obj, error = parse_bounded(data, MAX_DEPTH + 2)  # the document, its list of runs, then each run
        if error is not None:
            self._problem(None, error)
            self._modified("it is not a plan that diff --out writes")
            return
        if not isinstance(obj, dict) or not is_plan_object(obj):
            raise ConfigError(f"{self.path}: not a saved plan (a JSON object with kind {KIND})")
        if obj.get("format") == OLD_FORMAT:
            self._old_format()
        runs = obj.get("runs")
        header = {k: v for k, v in obj.items() if k != "runs" and k not in TRAILER_FIELDS}
        trailer = {k: obj[k] for k in TRAILER_FIELDS if k in obj}
        digest = self._check_header(header, None)
        if not isinstance(runs, list):
            self._problem(None, "must be a list of runs", "", "runs")
            self._modified("it has no list of runs")
            runs = []
        keys = KeySet()
        batch: list[tuple[int | None, int, str]] = []
        try:
            for index, record in enumerate(runs):
                self._check_run_value(record, None, index, digest, batch)
                if len(batch) >= _BATCH:
                    self._check_duplicates(keys, batch)
            self._check_duplicates(keys, batch)
        finally:
            keys.close()
        self._check_trailer(trailer, None, digest)
        self._whole = list(enumerate(runs))
        self._raw_digest = hashlib.sha256(data).hexdigest()

    def _check_header(self, header: dict[str, Any], line: int | None) -> Any:
        """Validate the header; returns the plan digest under way."""
        try:
            model = HeaderModel.model_validate(header)
        except ValidationError as exc:
            self._pydantic(exc, line, "")
        else:
            self._header = header
            for field, value in (("tool_version", model.tool_version), ("namespace", model.namespace)):
                problem = unsafe_char_problem(value)
                if problem:
                    self._problem(line, problem, "", field)
            if model.target is not None:
                for field, value in (("tenant_id", model.target.tenant_id), ("address", model.target.address)):
                    problem = unsafe_char_problem(value)
                    if problem:
                        self._problem(line, problem, "", f"target.{field}")
            if unsafe_char_problem(model.namespace) is None:
                self._namespace = model.namespace
            try:
                datetime.fromisoformat(model.created_at)
            except ValueError:
                self._problem(line, f"not an ISO 8601 time, got {quote(model.created_at)}", "", "created_at")
        return header_digest(header)

    def _check_run(
        self, body: bytes, line: int, index: int, digest: Any, batch: list[tuple[int | None, int, str]]
    ) -> None:
        record, error = parse_bounded(body)
        if error is not None:
            self._problem(line, error, f"runs[{index}]")
            self._modified("it is not a plan that diff --out writes")
            return
        self._check_run_value(record, line, index, digest, batch)

    def _check_run_value(
        self, record: Any, line: int | None, index: int, digest: Any, batch: list[tuple[int | None, int, str]]
    ) -> None:
        where = f"runs[{index}]"
        if line is None and json_depth_over(record, MAX_DEPTH):  # a line was checked as it was parsed
            self._problem(line, f"values nested deeper than {MAX_DEPTH} levels", where)
            self._modified("it is not a plan that diff --out writes")
            return
        digest.update(canonical_json(record) + b"\n")
        try:
            run = RunModel.model_validate(record).as_run()
        except ValidationError as exc:
            self._pydantic(exc, line, where)
            return
        self._counts[run.action] += 1
        if (run.kind or "run") != kind_of_key(run.key):
            self._problem(line, f"a key {quote(run.key)} is not of kind {quote(run.kind or 'run')}", where, "kind")
        elif run.kind is not None and run.action != "removed" and None in (run.trigger() or {}).values():
            missing = [k for k, v in (run.trigger() or {}).items() if v is None and k != "scope"]
            if missing:
                self._problem(line, f"must be set for a {run.kind} to {run.action}", where, missing[0])
        problems_before = self._problem_count
        _, error = check_key(run.key)
        if error:
            self._problem(line, error, where, "key")
        else:
            batch.append((line, index, run.key))
        if run.secret:
            self._secret_count += 1
            if len(self._secret_keys) < 5:
                self._secret_keys.append(run.key)
        if run.run_id is not None:
            error = unsafe_char_problem(run.run_id)
            if error:
                self._problem(line, error, where, "run_id")
        if run.manifest and not _NAME.match(run.manifest):
            self._problem(line, f"not a manifest name, got {quote(run.manifest)}", where, "manifest")
        if run.workflow_name is not None:
            error = check_workflow_name(run.workflow_name)
            if error:
                self._problem(line, error, where, "workflow_name")
        if run.priority is not None:
            _, error = check_priority(run.priority)
            if error:
                self._problem(line, error, where, "priority")
        if run.action == "removed":
            return
        for field in (
            ("manifest", "input", "additional_metadata")
            if run.workflow_name is not None
            else ("manifest", "workflow_name", "input", "additional_metadata")
        ):
            if getattr(run, field) in (None, ""):  # an empty workflow name has its own problem already
                self._problem(line, f"must be set for a run to {run.action}", where, field)
        sound = self._problem_count == problems_before and self._namespace is not None
        # a secret run is never applied from a plan (refused below) and its text may have been scrubbed of a
        # secret's value (see PlanWriter.add): its digest is of the content as rendered
        if (
            sound
            and not run.secret
            and run_digest(self._rendered(record, line or 0, where), self._namespace or "") != run.digest
        ):
            self._problem(line, "does not match the run's content", where, "digest")
            self._modified("a run's digest does not match its content")

    def _check_trailer_text(self, text: bytes, line: int, digest: Any) -> None:
        trailer, error = parse_bounded(text)
        if error is not None or not isinstance(trailer, dict):
            self._problem(line, error or "not valid JSON", "trailer")
            self._modified("it is not a plan that diff --out writes")
            return
        self._check_trailer(trailer, line, digest)

    def _check_trailer(self, trailer: dict[str, Any], line: int | None, digest: Any) -> None:
        try:
            model = TrailerModel.model_validate(trailer)
        except ValidationError as exc:
            self._pydantic(exc, line, "")
            if not isinstance(trailer.get("plan_digest"), str):
                self._modified("it has no plan_digest")
            return
        self._trailer = trailer
        digest.update(trailer_json(trailer))
        if "sha256:" + digest.hexdigest() != model.plan_digest:
            self._integrity = "its content does not match its plan_digest"  # the verdict, whatever else was found
        if set(model.summary) != set(ACTIONS):
            self._problem(line, f"must count each of {', '.join(ACTIONS)}", "", "summary")
        elif any(model.summary[a] != self._counts[a] for a in ACTIONS):
            held = ", ".join(f"{self._counts[a]} {a}" for a in ACTIONS)
            self._problem(line, f"does not count the runs the plan holds ({held})", "", "summary")

    def _check_duplicates(self, keys: KeySet, batch: list[tuple[int | None, int, str]]) -> None:
        if not batch:
            return
        for i in keys.add_batch([key for _, _, key in batch]):
            line, index, key = batch[i]
            self._problem(line, f"duplicate key {quote(key)}", f"runs[{index}]", "key")
            self._modified("it holds a key twice")
        batch.clear()

    def _pydantic(self, exc: ValidationError, line: int | None, where: str) -> None:
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            if err["type"] == "extra_forbidden":
                self._problem(line, f"unknown field {quote(loc[-1])}", where, ".".join(loc[:-1]))
            elif err["type"] == "missing":
                self._problem(line, f"missing required field {quote(loc[-1])}", where, ".".join(loc[:-1]))
            else:
                self._problem(line, str(err["msg"]), where, ".".join(loc))

    def _rendered(self, rec: dict[str, Any], line: int, where: str) -> RenderedRun:
        model = RunModel.model_validate(rec).as_run()
        return RenderedRun(
            model.key,
            model.workflow_name or "",
            model.input or {},
            model.additional_metadata or {},
            model.priority,
            model.manifest,
            self._shown,
            line,
            where,
            kind=model.kind or "run",
            trigger=model.trigger(),
        )
