"""What RPC threads hand to the scheduler thread. A call waits (bounded) until its transaction has committed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from hatchet_client.engine.dispatch.definitions import WorkflowDef
from hatchet_client.engine.dispatch.event_runs import EventIn
from hatchet_client.engine.dispatch.workers import WorkerStream


@dataclass(eq=False)
class Call:
    done: threading.Event = field(default_factory=threading.Event, init=False)
    result: Any = field(default=None, init=False)
    error: BaseException | None = field(default=None, init=False)


@dataclass(eq=False)
class PutWorkflow(Call):
    definition: WorkflowDef


@dataclass(eq=False)
class Register(Call):
    name: str
    actions: tuple[str, ...]
    capacity: dict[str, int]


@dataclass(eq=False)
class Revive(Call):
    """A worker id the scheduler does not hold: one declared dead that is still alive, or unknown."""

    worker_id: str


@dataclass(eq=False)
class Listen(Call):
    worker_id: str
    stream: WorkerStream


@dataclass(eq=False)
class Detach(Call):
    """A ListenV2 call ended; `undelivered` are the actions it never sent."""

    worker_id: str
    stream: WorkerStream
    undelivered: list[Any]


@dataclass(eq=False)
class Unsubscribe(Call):
    worker_id: str


@dataclass(eq=False)
class StepEvent(Call):
    worker_id: str
    external_id: str
    retry_count: int | None
    kind: str  # started | completed | failed | cancelled
    payload: str
    should_not_retry: bool = False
    retry_after_ms: int | None = None


@dataclass(eq=False)
class Cancel(Call):
    """Cancel runs (by run id) or tasks (by task external id); result: the ids that were cancelled."""

    ids: tuple[str, ...]


@dataclass(eq=False)
class Replay(Call):
    """Run finished runs (by run id) or tasks and their descendants (by task external id) again, under the same
    ids (dispatch/replay.py); result: the external ids of the tasks named (what Hatchet's REST answer echoes)."""

    ids: tuple[str, ...]


@dataclass(eq=False)
class RefreshTimeout(Call):
    external_id: str
    seconds: float


@dataclass(eq=False)
class ReleaseSlot(Call):
    external_id: str


@dataclass(eq=False)
class Log(Call):
    external_id: str
    retry_count: int | None
    created_at: str
    level: str | None
    message: str


@dataclass(eq=False)
class CreateCron(Call):
    """A REST-created cron (checked: the expression parses, the texts are JSON objects); result: its id."""

    workflow_name: str
    name: str
    expression: str
    input_text: str
    metadata_text: str
    priority: int | None


@dataclass(eq=False)
class DeleteCron(Call):
    cron_id: str


@dataclass(eq=False)
class EnableCron(Call):
    cron_id: str
    enabled: bool


@dataclass(eq=False)
class CreateSchedule(Call):
    """A scheduled run at `trigger_at` (epoch seconds); result: its id."""

    workflow_name: str
    trigger_at: float
    input_text: str
    metadata_text: str
    priority: int | None


@dataclass(eq=False)
class UpdateSchedule(Call):
    schedule_id: str
    trigger_at: float


@dataclass(eq=False)
class DeleteSchedules(Call):
    """Result: the ids that were deleted (a schedule that fired is gone)."""

    ids: tuple[str, ...]


@dataclass(eq=False)
class PushEvents(Call):
    """Store events and start the runs of the workflows they match; result: [(event id, stored at)]."""

    events: tuple[EventIn, ...]


@dataclass(eq=False)
class Wake(Call):
    """New runs were committed (or anything else worth a look)."""
