"""The client's exceptions. None of them ever contains the API token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hatchet_client.types import ChunkOutcome


class HatchetClientError(Exception):
    """Base of every error raised by hatchet_client."""


class ConfigError(HatchetClientError):
    """A setting is missing or malformed (environment, keyword argument or token)."""


class TokenError(ConfigError):
    """The API token is not a JWT carrying the claims the client needs. The message never quotes the token."""


class RunValidationError(HatchetClientError):
    """A run cannot be sent: it is rejected before anything about it goes on the wire.

    `index` is the run's position in the input (0-based), `tag` the caller's tag for it (the index when the
    caller gave none), `field` the offending part (e.g. `options.additional_metadata.key`).
    """

    def __init__(self, index: int, field: str, problem: str, tag: object = None) -> None:
        self.index = index
        self.field = field
        self.problem = problem
        self.tag = index if tag is None else tag
        where = f"run {index}" if tag is None or tag == index else f"run {index} ({tag!r})"
        super().__init__(f"{where}: {field}: {problem}")


class RpcError(HatchetClientError):
    """A single gRPC call failed. `code` is the gRPC status name (e.g. `UNAVAILABLE`).

    `applied` is False when the engine is known not to have applied the call, None when it may have.
    """

    def __init__(self, message: str, *, code: str | None, applied: Literal[False] | None) -> None:
        self.code = code
        self.applied = applied
        super().__init__(message)


class SubmissionStopped(HatchetClientError):
    """A bulk submission stopped early because of a failure that every further call would repeat
    (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, or no connection).

    Raised by the submission iterator after the outcomes of every chunk already sent were yielded.
    `outcome` is the chunk outcome that stopped it; runs after the last chunk sent were never sent.
    """

    def __init__(self, outcome: ChunkOutcome[Any]) -> None:
        self.outcome = outcome
        super().__init__(f"submission stopped: chunk {outcome.seq}: {outcome.code or 'not sent'}: {outcome.error}")


RunFate = Literal["submitted", "failed", "unknown", "not_sent"]


class BulkSubmitError(HatchetClientError):
    """`run_workflows` did not submit every run. Nothing that the engine accepted is lost:

    - `run_ids`: input index -> run id, for every run whose chunk was accepted;
    - `failed`: indices of runs the engine is known not to have created (the call was rejected, or never sent);
    - `unknown`: indices of runs whose call may or may not have been applied (timeout, broken connection...);
    - `not_sent_from`: every index from this one on was never sent (None when all runs were sent);
    - `errors`: one line per failed or unknown chunk.
    """

    def __init__(
        self,
        *,
        run_ids: Mapping[int, str],
        failed: Sequence[int],
        unknown: Sequence[int],
        not_sent_from: int | None,
        errors: Sequence[str],
    ) -> None:
        self.run_ids = dict(run_ids)
        self.failed = list(failed)
        self.unknown = list(unknown)
        self.not_sent_from = not_sent_from
        self.errors = list(errors)
        self._unknown_set = frozenset(self.unknown)
        parts = [f"{len(self.run_ids)} runs submitted"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.unknown:
            parts.append(f"{len(self.unknown)} with unknown fate (may have been created)")
        if not_sent_from is not None:
            parts.append(f"runs from index {not_sent_from} on not sent")
        detail = "; ".join(self.errors[:5]) + (f"; ... ({len(self.errors) - 5} more)" if len(self.errors) > 5 else "")
        super().__init__("bulk submission incomplete: " + ", ".join(parts) + (f": {detail}" if detail else ""))

    def fate(self, index: int) -> RunFate:
        """What happened to the run at input position `index`."""
        if index in self.run_ids:
            return "submitted"
        if self.not_sent_from is not None and index >= self.not_sent_from:
            return "not_sent"
        if index in self._unknown_set:
            return "unknown"
        return "failed"


class BulkSubmitInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run_workflows`: still a KeyboardInterrupt, carrying what was known when it stopped.

    `partial` is a BulkSubmitError: run ids of the chunks answered, and (as unknown) the calls cut short."""

    def __init__(self, partial: BulkSubmitError) -> None:
        self.partial = partial
        super().__init__(str(partial))


class CronExpressionError(HatchetClientError, ValueError):
    """A cron expression Hatchet would not fire. `field` names the part at fault (`second`, `minute`, `hour`,
    `day of month`, `month`, `day of week`), None when the expression as a whole is wrong; `problem` says why."""

    def __init__(self, expression: str, problem: str, field: str | None = None, text: str | None = None) -> None:
        self.expression = expression
        self.field = field
        self.problem = problem
        shown = expression if len(expression) <= 80 else expression[:77] + "..."
        where = "" if field is None else f"{field} field {text!r}: " if text is not None else f"{field} field: "
        super().__init__(f"cron expression {shown!r}: {where}{problem}")


class RunResultError(HatchetClientError):
    """Waiting for a run's result failed."""


class RunFailedError(RunResultError):
    """The run finished in FAILED or CANCELLED state. `errors` maps task name -> error text."""

    def __init__(self, run_id: str, status: str, errors: Mapping[str, str]) -> None:
        self.run_id = run_id
        self.status = status
        self.errors = dict(errors)
        detail = "; ".join(f"{task}: {err}" for task, err in self.errors.items())
        super().__init__(f"run {run_id} {status.lower()}" + (f": {detail}" if detail else ""))


class ResultTimeoutError(RunResultError):
    """The run was not done when the timeout expired. `status` is the last status seen (None if never found)."""

    def __init__(self, run_id: str, timeout: float, status: str | None) -> None:
        self.run_id = run_id
        self.status = status
        seen = f"last status {status}" if status else "run not found yet"
        super().__init__(f"run {run_id} not done after {timeout:g}s ({seen})")


RestFailure = Literal[
    "invalid_request",
    "unreachable",
    "timeout",
    "not_http",
    "http_status",
    "content_type",
    "truncated",
    "too_large",
    "not_json",
    "too_deep",
    "bad_shape",
]


class RestError(HatchetClientError):
    """A REST request failed, or its answer cannot be trusted. Every failure of a REST call is one of these.

    `reason` says what went wrong:

    - `invalid_request`: the request was not sent (a bad argument or URL);
    - `unreachable`: no connection (refused, unknown host, reset before an answer);
    - `timeout`: the answer was not complete within the request's total deadline;
    - `not_http`: the server answered something that is not HTTP (or malformed HTTP framing);
    - `http_status`: an HTTP status other than 2xx (`status` holds it);
    - `content_type`: a 2xx answer that does not say it is JSON;
    - `truncated`: the body ended before its announced length (or its last chunk);
    - `too_large`: the body is larger than the response-size cap;
    - `not_json`: the body is not UTF-8 JSON;
    - `too_deep`: the JSON nests deeper than the depth limit;
    - `bad_shape`: valid JSON, but not the shape the API documents.

    `url` is the request's URL without its query string or credentials; the message names it and never
    contains the token.
    """

    def __init__(
        self,
        problem: str,
        *,
        reason: RestFailure = "invalid_request",
        url: str | None = None,
        method: str = "GET",
        status: int | None = None,
    ) -> None:
        self.problem = problem
        self.reason: RestFailure = reason
        self.url = url
        self.method = method
        self.status = status
        super().__init__(f"{method} {url}: {problem}" if url else problem)


class ListRunsError(RestError):
    """The REST run listing failed (HTTP error, unreachable server, or a response we cannot read)."""


class ListWorkflowsError(RestError):
    """The REST workflow listing failed (HTTP error, unreachable server, or a response we cannot read)."""


class TaskOpsError(RestError):
    """A REST task operation failed: the run metrics, a cancel or a replay (HTTP error, unreachable server, or an
    answer we cannot read). `echoed`: the ids that earlier batches of the same cancel or replay echoed (they were
    acted on) when a later batch failed."""

    def __init__(
        self,
        problem: str,
        *,
        reason: RestFailure = "invalid_request",
        url: str | None = None,
        method: str = "GET",
        status: int | None = None,
        echoed: Sequence[str] = (),
    ) -> None:
        super().__init__(problem, reason=reason, url=url, method=method, status=status)
        self.echoed = list(echoed)


class CronError(RestError):
    """A REST cron operation failed (create, list, get, delete, enable or disable): a refused argument
    (`invalid_request`), an HTTP error, an unreachable server, or an answer we cannot read."""


class ScheduleError(RestError):
    """A REST scheduled-run operation failed (create, list, get, update, delete, bulk delete). `deleted`: the ids
    that earlier batches of the same bulk delete deleted, when a later batch failed."""

    def __init__(
        self,
        problem: str,
        *,
        reason: RestFailure = "invalid_request",
        url: str | None = None,
        method: str = "GET",
        status: int | None = None,
        deleted: Sequence[str] = (),
    ) -> None:
        super().__init__(problem, reason=reason, url=url, method=method, status=status)
        self.deleted = list(deleted)


class EventListError(RestError):
    """The REST event listing failed: a refused argument (`invalid_request`), an HTTP error, an unreachable server,
    or an answer we cannot read."""


class EventPushError(RpcError):
    """Pushing events failed. `code` and `applied` as for RpcError (`code` None and `applied` False: refused before
    anything was sent). `pushed`: the events that earlier calls of the same bulk push stored (EventRow values)."""

    def __init__(
        self, message: str, *, code: str | None, applied: Literal[False] | None, pushed: Sequence[Any] = ()
    ) -> None:
        super().__init__(message, code=code, applied=applied)
        self.pushed = list(pushed)
