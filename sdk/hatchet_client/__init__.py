"""hatchet_client: a Hatchet client with the SDK docs' trigger API, built for launching millions of runs.

from hatchet_client import Hatchet, ClientConfig

hatchet = Hatchet()  # settings from HATCHET_CLIENT_* (see hatchet_client.config)
ref = hatchet.client.admin.run_workflow("ManualTriggerWorkflow", {"test": "test"},
                                        options={"additional_metadata": {"hello": "moon"}})
refs = hatchet.admin.run_workflows([{"workflow_name": "BulkParent", "input": {"n": 1}}])
for outcome in hatchet.admin.submit((key, run) for key, run in pairs): ...   # one outcome per chunk
check = hatchet.check_workflows({"BulkParent"})   # before sending: the engine drops runs of unknown names
counts = hatchet.run_metrics({"batch": "b1"}, since=yesterday)   # {"QUEUED": 3, "RUNNING": 1, ...}
hatchet.cancel_runs(run_ids); hatchet.replay_runs(failed_run_ids)
hatchet.cron.create("Nightly", "nightly", "0 3 * * *", {}, {}); hatchet.scheduled.create("Once", at, {}, {})
hatchet.event.push("user:created", {"id": 1})   # runs every workflow whose on_events matches the key
"""

from hatchet_client.admin import AdminClient
from hatchet_client.client import Hatchet
from hatchet_client.config import ClientConfig, TLSSettings
from hatchet_client.cronexpr import Cron
from hatchet_client.crons import CronClient, CronRow
from hatchet_client.encode import RunEncoder
from hatchet_client.errors import (
    BulkSubmitError,
    BulkSubmitInterrupted,
    ConfigError,
    CronError,
    CronExpressionError,
    EventPushError,
    HatchetClientError,
    ListRunsError,
    ListWorkflowsError,
    RestError,
    ResultTimeoutError,
    RpcError,
    RunFailedError,
    RunResultError,
    RunValidationError,
    ScheduleError,
    SubmissionStopped,
    TaskOpsError,
    TokenError,
)
from hatchet_client.events import EventClient, EventRow
from hatchet_client.pipeline import Pacer, Submission
from hatchet_client.rest import RestClient, RestLimits
from hatchet_client.runs import RUN_STATUSES, RunDetails, RunRow, TaskDetails, WorkflowRunRef, list_run_ids, list_runs
from hatchet_client.scheduled import BulkDeleteResult, ScheduledClient, ScheduledRow
from hatchet_client.tasks import cancel_runs, replay_runs, run_metrics
from hatchet_client.token import TokenClaims, decode_token
from hatchet_client.types import (
    Chunk,
    ChunkOutcome,
    ChunkState,
    DesiredWorkerLabel,
    TriggerWorkflowOptions,
    WorkflowRun,
)
from hatchet_client.workflows import (
    EmbeddedEngineInfo,
    WorkflowCheck,
    WorkflowRow,
    check_workflows,
    list_workflows,
)

__all__ = [
    "RUN_STATUSES",
    "AdminClient",
    "BulkDeleteResult",
    "BulkSubmitError",
    "BulkSubmitInterrupted",
    "Chunk",
    "ChunkOutcome",
    "ChunkState",
    "ClientConfig",
    "ConfigError",
    "Cron",
    "CronClient",
    "CronError",
    "CronExpressionError",
    "CronRow",
    "DesiredWorkerLabel",
    "EmbeddedEngineInfo",
    "EventClient",
    "EventPushError",
    "EventRow",
    "Hatchet",
    "HatchetClientError",
    "ListRunsError",
    "ListWorkflowsError",
    "Pacer",
    "RestClient",
    "RestError",
    "RestLimits",
    "ResultTimeoutError",
    "RpcError",
    "RunDetails",
    "RunEncoder",
    "RunFailedError",
    "RunResultError",
    "RunRow",
    "RunValidationError",
    "ScheduleError",
    "ScheduledClient",
    "ScheduledRow",
    "Submission",
    "SubmissionStopped",
    "TLSSettings",
    "TaskDetails",
    "TaskOpsError",
    "TokenClaims",
    "TokenError",
    "TriggerWorkflowOptions",
    "WorkflowCheck",
    "WorkflowRow",
    "WorkflowRun",
    "WorkflowRunRef",
    "cancel_runs",
    "check_workflows",
    "decode_token",
    "list_run_ids",
    "list_runs",
    "list_workflows",
    "replay_runs",
    "run_metrics",
]
