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
for event in hatchet.event.list(additional_metadata={"batch": "b1"}, since=yesterday): ...   # newest first
"""

# Imported on first use (PEP 562), so that `import hatchet_client.cronexpr` (pure Python, what the manifest stage
# uses to check cron expressions) does not load gRPC and the generated stubs.
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        EventListError,
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
    from hatchet_client.runs import (
        RUN_STATUSES,
        RunDetails,
        RunRow,
        TaskDetails,
        WorkflowRunRef,
        list_run_ids,
        list_runs,
    )
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

_WHERE = {
    "AdminClient": "hatchet_client.admin",
    "BulkDeleteResult": "hatchet_client.scheduled",
    "BulkSubmitError": "hatchet_client.errors",
    "BulkSubmitInterrupted": "hatchet_client.errors",
    "Chunk": "hatchet_client.types",
    "ChunkOutcome": "hatchet_client.types",
    "ChunkState": "hatchet_client.types",
    "ClientConfig": "hatchet_client.config",
    "ConfigError": "hatchet_client.errors",
    "Cron": "hatchet_client.cronexpr",
    "CronClient": "hatchet_client.crons",
    "CronError": "hatchet_client.errors",
    "CronExpressionError": "hatchet_client.errors",
    "CronRow": "hatchet_client.crons",
    "DesiredWorkerLabel": "hatchet_client.types",
    "EmbeddedEngineInfo": "hatchet_client.workflows",
    "EventClient": "hatchet_client.events",
    "EventListError": "hatchet_client.errors",
    "EventPushError": "hatchet_client.errors",
    "EventRow": "hatchet_client.events",
    "Hatchet": "hatchet_client.client",
    "HatchetClientError": "hatchet_client.errors",
    "ListRunsError": "hatchet_client.errors",
    "ListWorkflowsError": "hatchet_client.errors",
    "Pacer": "hatchet_client.pipeline",
    "RUN_STATUSES": "hatchet_client.runs",
    "RestClient": "hatchet_client.rest",
    "RestError": "hatchet_client.errors",
    "RestLimits": "hatchet_client.rest",
    "ResultTimeoutError": "hatchet_client.errors",
    "RpcError": "hatchet_client.errors",
    "RunDetails": "hatchet_client.runs",
    "RunEncoder": "hatchet_client.encode",
    "RunFailedError": "hatchet_client.errors",
    "RunResultError": "hatchet_client.errors",
    "RunRow": "hatchet_client.runs",
    "RunValidationError": "hatchet_client.errors",
    "ScheduleError": "hatchet_client.errors",
    "ScheduledClient": "hatchet_client.scheduled",
    "ScheduledRow": "hatchet_client.scheduled",
    "Submission": "hatchet_client.pipeline",
    "SubmissionStopped": "hatchet_client.errors",
    "TLSSettings": "hatchet_client.config",
    "TaskDetails": "hatchet_client.runs",
    "TaskOpsError": "hatchet_client.errors",
    "TokenClaims": "hatchet_client.token",
    "TokenError": "hatchet_client.errors",
    "TriggerWorkflowOptions": "hatchet_client.types",
    "WorkflowCheck": "hatchet_client.workflows",
    "WorkflowRow": "hatchet_client.workflows",
    "WorkflowRun": "hatchet_client.types",
    "WorkflowRunRef": "hatchet_client.runs",
    "cancel_runs": "hatchet_client.tasks",
    "check_workflows": "hatchet_client.workflows",
    "decode_token": "hatchet_client.token",
    "list_run_ids": "hatchet_client.runs",
    "list_runs": "hatchet_client.runs",
    "list_workflows": "hatchet_client.workflows",
    "replay_runs": "hatchet_client.tasks",
    "run_metrics": "hatchet_client.tasks",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'hatchet_client' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "EventListError",
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
