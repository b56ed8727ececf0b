"""Workflow versions: a PutWorkflow request checked and reduced to what the scheduler runs, and what it does not do.

A definition is stored as JSON (`workflow_versions.definition`) and rebuilt from it when the engine starts, so the
runs of a version keep running on it after a worker registers another one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc

from hatchet_client import cronexpr
from hatchet_client.engine.validate import RequestError
from hatchet_client.errors import CronExpressionError

DEFAULT_TIMEOUT_SECONDS = 60.0  # Hatchet's default execution timeout
DEFAULT_SCHEDULE_TIMEOUT_SECONDS = 300.0  # and schedule timeout (5m)
DEFAULT_MAX_BACKOFF_SECONDS = 86_400  # Hatchet caps factor^retry at a day without backoff_max_seconds
MAX_RETRIES = 1000
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, what: str) -> float:
    """Seconds in a Go duration (`90s`, `1m30s`, `1.5h`, `250ms`), as Hatchet parses task timeouts."""
    text = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        pos = match.end()
    if not text or pos != len(text):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{what}: {text!r} is not a duration such as 30s or 5m")
    return total


@dataclass(frozen=True, slots=True)
class TaskDef:
    readable_id: str
    action: str
    parents: tuple[str, ...]
    retries: int
    backoff_factor: float | None
    backoff_max_seconds: int | None
    timeout: float
    schedule_timeout: float
    slot_requests: dict[str, int] = field(default_factory=lambda: {"default": 1})
    is_durable: bool = False

    def backoff(self, retry_count: int) -> float:
        """Seconds before retry number `retry_count` (1 = the first retry): min(max, factor ** retry_count), as
        Hatchet computes it; no factor, no wait."""
        if self.backoff_factor is None:
            return 0.0
        cap = float(self.backoff_max_seconds or DEFAULT_MAX_BACKOFF_SECONDS)
        try:
            return float(min(cap, self.backoff_factor**retry_count))
        except OverflowError:
            return cap


@dataclass(frozen=True, slots=True)
class WorkflowDef:
    name: str
    tasks: tuple[TaskDef, ...]
    on_failure: TaskDef | None
    default_priority: int
    not_enforced: tuple[str, ...]
    event_triggers: tuple[str, ...] = ()  # the `on_events` key patterns (`*` a wildcard)
    cron_triggers: tuple[str, ...] = ()  # the `on_crons` expressions (checked: hatchet_client.cronexpr)
    cron_input: str | None = None  # the JSON object text the code-declared crons' runs get as input

    def task(self, readable_id: str) -> TaskDef:
        if self.on_failure is not None and readable_id == self.on_failure.readable_id:
            return self.on_failure
        for task in self.tasks:
            if task.readable_id == readable_id:
                return task
        raise KeyError(readable_id)

    def children(self, readable_id: str) -> list[TaskDef]:
        return [task for task in self.tasks if readable_id in task.parents]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkflowDef:
        data = json.loads(text)
        tasks = tuple(_task_from_dict(t) for t in data["tasks"])
        on_failure = None if data["on_failure"] is None else _task_from_dict(data["on_failure"])
        return cls(
            data["name"],
            tasks,
            on_failure,
            data["default_priority"],
            tuple(data["not_enforced"]),
            tuple(data.get("event_triggers", ())),
            tuple(data.get("cron_triggers", ())),
            data.get("cron_input"),
        )

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def _task_from_dict(data: dict[str, Any]) -> TaskDef:
    return TaskDef(**{**data, "parents": tuple(data["parents"])})


def _invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _task(opts: Any, where: str, not_enforced: set[str]) -> TaskDef:
    if not opts.readable_id:
        raise _invalid(f"{where}: readable_id is empty")
    if not opts.action:
        raise _invalid(f"{where} {opts.readable_id!r}: action is empty")
    if not 0 <= opts.retries <= MAX_RETRIES:
        raise _invalid(f"{where} {opts.readable_id!r}: retries must be between 0 and {MAX_RETRIES}")
    factor = opts.backoff_factor if opts.HasField("backoff_factor") else None
    if factor is not None and not factor > 0:
        raise _invalid(f"{where} {opts.readable_id!r}: backoff_factor must be positive")
    max_backoff = opts.backoff_max_seconds if opts.HasField("backoff_max_seconds") else None
    if max_backoff is not None and max_backoff < 1:
        raise _invalid(f"{where} {opts.readable_id!r}: backoff_max_seconds must be at least 1")
    timeout = parse_duration(opts.timeout, f"{where} {opts.readable_id!r}: timeout") if opts.timeout else None
    schedule = opts.schedule_timeout if opts.HasField("schedule_timeout") and opts.schedule_timeout else None
    slots = dict(opts.slot_requests) or {"durable" if opts.is_durable else "default": 1}
    if any(units < 1 for units in slots.values()):
        raise _invalid(f"{where} {opts.readable_id!r}: slot_requests must ask for at least 1 unit")
    if opts.rate_limits:
        not_enforced.add("rate_limits")
    if opts.worker_labels:
        not_enforced.add("worker_labels")
    if opts.concurrency:
        not_enforced.add("concurrency")
    conditions = opts.conditions
    if conditions.sleep_conditions or conditions.user_event_conditions or conditions.parent_override_conditions:
        not_enforced.add("conditions (wait_for, skip_if, cancel_if)")
    if opts.is_durable:
        not_enforced.add("durable tasks (run as ordinary tasks: no durable sleep, wait or eviction)")
    if opts.HasField("batch") and opts.batch.batch_max_size:
        not_enforced.add("batched tasks")
    return TaskDef(
        readable_id=opts.readable_id,
        action=opts.action,
        parents=tuple(opts.parents),
        retries=opts.retries,
        backoff_factor=factor,
        backoff_max_seconds=max_backoff,
        timeout=timeout or DEFAULT_TIMEOUT_SECONDS,
        schedule_timeout=(
            DEFAULT_SCHEDULE_TIMEOUT_SECONDS
            if schedule is None
            else parse_duration(schedule, f"{where} {opts.readable_id!r}: schedule_timeout")
        ),
        slot_requests=slots,
        is_durable=opts.is_durable,
    )


def _check_dag(tasks: list[TaskDef]) -> None:
    ids = [t.readable_id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise _invalid(f"duplicate task readable ids: {', '.join(dupes)}")
    known = set(ids)
    for task in tasks:
        missing = [p for p in task.parents if p not in known]
        if missing:
            raise _invalid(f"task {task.readable_id!r}: unknown parents {', '.join(missing)}")
    done: set[str] = set()
    remaining = list(tasks)
    while remaining:
        ready = [t for t in remaining if set(t.parents) <= done]
        if not ready:
            raise _invalid(f"the tasks' parents form a cycle: {', '.join(t.readable_id for t in remaining)}")
        done.update(t.readable_id for t in ready)
        remaining = [t for t in remaining if t.readable_id not in done]


def parse_workflow(request: Any) -> WorkflowDef:
    """A CreateWorkflowVersionRequest checked (names, parents, acyclic, durations) into a WorkflowDef that lists
    the features it declares and the engine does not enforce. RequestError (INVALID_ARGUMENT) otherwise."""
    if not request.name:
        raise _invalid("workflow name is empty")
    if "\x00" in request.name:
        raise _invalid("workflow name cannot contain NUL")
    if not request.tasks:
        raise _invalid(f"workflow {request.name!r} has no tasks")
    not_enforced: set[str] = set()
    tasks = [_task(opts, "task", not_enforced) for opts in request.tasks]
    _check_dag(tasks)
    on_failure = None
    if request.HasField("on_failure_task") and request.on_failure_task.action:
        on_failure = _task(request.on_failure_task, "on_failure_task", not_enforced)
        if on_failure.readable_id in {t.readable_id for t in tasks}:
            raise _invalid(f"on_failure_task {on_failure.readable_id!r} has the id of another task")
        on_failure = TaskDef(**{**asdict(on_failure), "parents": ()})
    if (request.HasField("concurrency") and request.concurrency.expression) or request.concurrency_arr:
        not_enforced.add("concurrency")
    if request.HasField("sticky"):
        not_enforced.add("sticky")
    if request.default_filters:
        not_enforced.add("default_filters (events trigger the workflow as if it had no filters)")
    if request.HasField("idempotency") and request.idempotency.expression:
        not_enforced.add("idempotency")
    if request.HasField("input_json_schema") and request.input_json_schema:
        not_enforced.add("input_json_schema (inputs are not validated)")
    priority = request.default_priority if request.HasField("default_priority") else 1
    if not 1 <= priority <= 3:
        raise _invalid(f"default_priority must be between 1 and 3, got {priority}")
    return WorkflowDef(
        request.name,
        tuple(tasks),
        on_failure,
        priority,
        tuple(sorted(not_enforced)),
        _event_triggers(request),
        _cron_triggers(request),
        _cron_input(request),
    )


def _event_triggers(request: Any) -> tuple[str, ...]:
    keys = tuple(request.event_triggers)
    for key in keys:
        if not key or "\x00" in key:
            raise _invalid(f"workflow {request.name!r}: an event trigger must be a non-empty key without NUL")
    return keys


def _cron_triggers(request: Any) -> tuple[str, ...]:
    expressions = []
    for text in request.cron_triggers:
        try:
            expressions.append(cronexpr.parse(text).expression)
        except CronExpressionError as exc:
            raise _invalid(f"workflow {request.name!r}: cron trigger: {exc}") from None
    return tuple(dict.fromkeys(expressions))


def _cron_input(request: Any) -> str | None:
    if not request.HasField("cron_input") or not request.cron_input:
        return None
    try:
        value = json.loads(request.cron_input)
    except ValueError:
        raise _invalid(f"workflow {request.name!r}: cron_input is not JSON") from None
    if not isinstance(value, dict):
        raise _invalid(f"workflow {request.name!r}: cron_input is not a JSON object")
    return str(request.cron_input)
