"""The shapes the client accepts and returns: run dicts (as in the SDK docs) and bulk chunk outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, NotRequired, TypeAlias, TypedDict, TypeVar

MetadataValue: TypeAlias = str | int | float | bool


class DesiredWorkerLabel(TypedDict, total=False):
    """A worker-affinity label; `value` is a string or an int (sent as str_value / int_value)."""

    value: str | int
    required: bool
    comparator: Literal[
        "EQUAL", "NOT_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL", "LESS_THAN", "LESS_THAN_OR_EQUAL"
    ]
    weight: int


class TriggerWorkflowOptions(TypedDict, total=False):
    """Options of one run. Unknown keys are an error.

    - additional_metadata: string -> scalar; ints and floats are sent as their decimal text, booleans as
      `true`/`false`, strings as is; None, lists and dicts are an error (see hatchet_client.encode);
    - priority: 1, 2 or 3;
    - desired_worker_id: a worker UUID;
    - desired_worker_labels: label key -> DesiredWorkerLabel;
    - namespace: overrides the client's namespace for this run (normalised the same way).
    """

    additional_metadata: Mapping[str, MetadataValue]
    priority: int
    desired_worker_id: str
    desired_worker_labels: Mapping[str, DesiredWorkerLabel]
    namespace: str


class WorkflowRun(TypedDict):
    """One run for `run_workflows`, shaped as in the SDK docs. `input` must be a JSON-serialisable dict."""

    workflow_name: str
    input: Mapping[str, Any]
    options: NotRequired[TriggerWorkflowOptions]


RunLike: TypeAlias = WorkflowRun | Mapping[str, Any]
"""What the trigger methods accept: a WorkflowRun, or any mapping of the same shape (checked at run time)."""

OptionsLike: TypeAlias = TriggerWorkflowOptions | Mapping[str, Any]

T = TypeVar("T")

ChunkState = Literal["submitted", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class Chunk(Generic[T]):
    """A group of runs sent in one BulkTriggerWorkflow call.

    `seq` numbers chunks from 0 in input order; `first_index` is the input position (0-based) of its first
    run; `tags` are the caller's tags of its runs, in input order (a list; a range of input indices for
    `run_workflows`); `size` is the request's encoded size in bytes.
    """

    seq: int
    first_index: int
    tags: Sequence[T]
    size: int

    def __len__(self) -> int:
        return len(self.tags)


@dataclass(frozen=True, slots=True)
class ChunkOutcome(Generic[T]):
    """What became of one chunk.

    - `submitted`: the engine created the runs; `run_ids[i]` is the run id of `chunk.tags[i]`.
    - `failed`: the engine is known not to have created any of them (`sent` tells whether the call was made:
      False when it was never sent, e.g. no connection or the submission was closed first).
    - `unknown`: the call may or may not have been applied (timeout, broken connection, server error, call
      cancelled by close()). Never resent by the client: reconcile it (e.g. list runs by metadata).

    `code` is the gRPC status name of the failed call (None when submitted or never sent), `error` its message.
    `fatal` marks a failure every further call would repeat; the submission stops after it.
    """

    chunk: Chunk[T]
    state: ChunkState
    run_ids: tuple[str, ...] = ()
    code: str | None = None
    error: str | None = None
    sent: bool = True
    fatal: bool = False

    @property
    def seq(self) -> int:
        return self.chunk.seq

    @property
    def tags(self) -> Sequence[T]:
        return self.chunk.tags
