"""The embedded engine: a local Hatchet-compatible server (gRPC trigger contract + REST run listing) over SQLite.

with Engine(tmp_path / "engine.db", port=0, workflows=["BulkParent"]) as eng:   # no workflows: a recorder
    token = eng.token()          # HATCHET_CLIENT_TOKEN for any Hatchet client, TLS strategy `none`
    ...
    runs = list(RunStore(eng.db_path).list_runs(workflow="my-workflow"))
"""

from hatchet_client.engine.engine import (
    DEFAULT_PORT,
    MAX_RECEIVE_BYTES,
    Engine,
    ServerTLS,
    issue_token,
)
from hatchet_client.engine.errors import EngineError, TokenError
from hatchet_client.engine.faults import Fault
from hatchet_client.engine.service import UNKNOWN_WORKFLOW_MODES, UnknownWorkflows
from hatchet_client.engine.store import KnownWorkflow, RunFilter, RunStore, StoredRun
from hatchet_client.engine.validate import MAX_BULK_RUNS

__all__ = [
    "DEFAULT_PORT",
    "MAX_BULK_RUNS",
    "MAX_RECEIVE_BYTES",
    "UNKNOWN_WORKFLOW_MODES",
    "Engine",
    "EngineError",
    "Fault",
    "KnownWorkflow",
    "RunFilter",
    "RunStore",
    "ServerTLS",
    "StoredRun",
    "TokenError",
    "UnknownWorkflows",
    "issue_token",
]
