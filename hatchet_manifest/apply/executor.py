"""The apply executor: planned runs -> chunks -> client -> ledger, write-ahead.

Before a chunk is sent its runs are recorded `pending`; its outcome (`submitted` with run ids, `failed`,
`unknown`) is recorded as soon as it is known. A crash at any moment therefore leaves every run either
confirmed, failed (never applied), or pending/unknown, which the next apply reconciles against the engine.
"""

from __future__ import annotations

import operator
import os
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from hatchet_client import AdminClient, ChunkOutcome, RunEncoder, WorkflowRun
from hatchet_client.errors import HatchetClientError
from hatchet_client.pipeline import Submission

from hatchet_manifest.apply.recorder import OutcomeRecorder, WriteAhead
from hatchet_manifest.apply.spool import Spool
from hatchet_manifest.apply.tags import Tag, TagFields
from hatchet_manifest.apply.triggers import TriggerWork
from hatchet_manifest.errors import ConfigError, HatchetManifestError, terminated
from hatchet_manifest.ledger import Ledger, PendingRow, Target
from hatchet_manifest.manifest.rendered import KEY_PREFIXES, RenderedRun, canonical_json
from hatchet_manifest.plan.names import WorkflowNames
from hatchet_manifest.plan.planner import Known, PlannedRun
from hatchet_manifest.plan.stamps import stamps
from hatchet_manifest.scrub import scrub

CRASH_ENV = "HATCHET_MANIFEST_CRASH_AT"  # test hook: "<point>:<chunk seq>", e.g. "after-pending:3"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # SIGTERM: stopped as on Ctrl-C


@dataclass(frozen=True)
class ApplyOptions:
    batch_size: int = 1000
    concurrency: int = 2
    stamp: bool = True
    resubmit_changed: bool = False
    resubmit_unknown: bool = False
    call_timeout: float | None = 120.0  # an expired deadline is an "unknown" outcome, never a resend
    interrupt_wait: float = 10.0  # on Ctrl-C, how long to wait for calls in flight before calling them unknown
    runs_per_second: float | None = None  # at most this many runs sent a second, on average (None: no limit)


@dataclass
class ApplyResult:
    counts: dict[str, int] = field(default_factory=dict)  # plan actions seen
    submitted: int = 0
    failed: int = 0
    unknown: int = 0
    skipped_changed: int = 0
    skipped_unknown: int = 0
    skipped_unknown_keys: list[str] = field(default_factory=list)  # fate still unknown: listed, exit code 3
    failed_keys: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    terminated: bool = False  # the interruption was a SIGTERM
    seconds: float = 0.0  # the whole apply, from the command's start (set by the caller when it knows it)
    to_send: int = 0  # the runs selected and spooled: every one ends submitted, failed, unknown or not sent
    unrecorded: int = 0  # sent, but their outcome could not be written (left pending in the ledger)
    # crons, schedules and events: {"plan": actions seen, "done": what was done, by what} (apply/triggers.py)
    triggers: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def not_sent(self) -> int:
        """Runs selected that never left (the apply stopped first, or their chunk was refused before sending)."""
        return max(0, self.to_send - self.submitted - self.failed - self.unknown - self.unrecorded)

    @property
    def done(self) -> int:
        """Runs whose outcome is known so far."""
        return self.submitted + self.failed + self.unknown

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED
        if (
            not self.failed
            and not self.unknown
            and not self.skipped_unknown
            and not self.errors
            and not self.not_sent
            and not self.unrecorded
        ):
            return EXIT_OK
        if self.submitted or self.unknown or self.skipped_unknown or self.unrecorded:
            return EXIT_PARTIAL  # some declared runs may not be in the engine: never "all submitted"
        return EXIT_ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.counts,
            "to_send": self.to_send,
            "submitted": self.submitted,
            "failed": self.failed,
            "unknown": self.unknown,
            "skipped_changed": self.skipped_changed,
            "skipped_unknown": self.skipped_unknown,
            "skipped_unknown_keys": self.skipped_unknown_keys,
            "failed_keys": self.failed_keys,
            "unknown_keys": self.unknown_keys,
            "errors": self.errors,
            "not_sent": self.not_sent,
            "unrecorded": self.unrecorded,
            "interrupted": self.interrupted,
            "terminated": self.terminated,
            "triggers": self.triggers,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
        }


KEEP_KEYS = 1000  # keys listed in a result, per kind
_ROW = operator.itemgetter(0, 1, 2, 3)  # a Tag's PendingRow fields
_KEY = operator.itemgetter(0)  # Tag.key
_REPLACE = operator.itemgetter(4)  # Tag.replace


_RUNNING: weakref.WeakSet[Submission[Any]] = weakref.WeakSet()  # the submissions of the applies running now


def starting_a_call(frame: FrameType | None = None) -> bool:
    """Whether a bulk call is being started (`Submission.starting_call`): an interruption there leaves the chunk's
    fate unknown (the call may or may not have left), so SIGTERM waits for that moment to pass (cli.py) and the
    next apply finds no unknown run. `frame` (the signal handler's) is not needed."""
    return any(s.starting_call for s in list(_RUNNING))


def _crash_point() -> tuple[str, int] | None:
    raw = os.environ.get(CRASH_ENV)
    if not raw:
        return None
    point, _, seq = raw.partition(":")
    return point, int(seq or 0)


def wanted(action: str, known: Known | None, options: ApplyOptions, result: ApplyResult, count: bool = True) -> bool:
    """Whether a planned run is sent (create; changed/unknown when asked); counts it into `result` (the skipped
    ones always; the others unless `count` is False: the caller counts them)."""
    if count:
        result.counts[action] = result.counts.get(action, 0) + 1
    if action == "create":
        return True
    if action == "changed":
        if options.resubmit_changed:
            return True
        result.skipped_changed += 1
    elif action == "unknown":
        # a row still `pending` is too recent to settle (see reconcile): never resent
        if options.resubmit_unknown and known is not None and known.state == "unknown":
            return True
        result.skipped_unknown += 1
        if known is not None and len(result.skipped_unknown_keys) < KEEP_KEYS:
            result.skipped_unknown_keys.append(known.key)
    return False


def wire_run(r: RenderedRun, key: str, stamp: bool, digest: str) -> WorkflowRun:
    """The run as sent: real secrets, and the stamps unless turned off."""
    return r.workflow_run(reveal=True, stamps=stamps(key, r.manifest, digest) if stamp else None)  # type: ignore[return-value]


def wire_item(
    encoder: RunEncoder, r: RenderedRun, key: str, stamp: bool, digest: str, input_json: bytes | None = None
) -> bytes:
    """`wire_run`'s run encoded as one item of a bulk request, its JSON written by `canonical_json`.
    `input_json`: the canonical JSON of `r.input` when made already (for the digest); used unless the input
    holds a secret, whose real value is sent."""
    if input_json is None or r.secret_input is not None:
        input_json = canonical_json(r.secret_input if r.secret_input is not None else r.input)
    metadata = r.secret_metadata if r.secret_metadata is not None else r.additional_metadata
    if stamp:
        metadata = {**metadata, **stamps(key, r.manifest, digest)}
    meta_json = canonical_json(metadata) if metadata else None
    return encoder.encode_json_item(r.workflow_name, input_json, meta_json, r.priority, 0, key)


def select(
    planned: Iterable[PlannedRun],
    options: ApplyOptions,
    result: ApplyResult,
    workflows: WorkflowNames | None = None,
    triggers: TriggerWork | None = None,
) -> Iterator[tuple[Tag, WorkflowRun]]:
    """The runs to send (create; changed/unknown when asked), stamped, with real secrets; counts the plan, and
    collects the workflow names of the runs to send into `workflows` (for the preflight). Crons, schedules and
    events are collected into `triggers` (apply/triggers.py acts on them); without it, a plan holding one is
    refused."""
    stamp = options.stamp
    for p in planned:
        if p.key.startswith(KEY_PREFIXES):
            if triggers is None:
                raise ConfigError("this apply cannot act on crons, schedules or events (see the README)")
            triggers.add(p)
            if workflows is not None and p.run is not None and p.run.kind != "event" and p.action != "unchanged":
                workflows.add(p.run)
            continue
        send = wanted(p.action, p.known, options, result)
        r = p.run
        if not send or r is None:
            continue
        if workflows is not None:
            workflows.add(r)
        yield Tag(p.key, p.digest, r.manifest, r.file, p.action == "changed"), wire_run(r, p.key, stamp, p.digest)


class Executor:
    """Sends the `create` runs of a plan (and `changed`/`unknown` ones when asked), recording every step."""

    def __init__(
        self,
        ledger: Ledger,
        target: Target,
        admin: AdminClient,
        options: ApplyOptions | None = None,
        on_progress: Callable[[ApplyResult], None] | None = None,
        result: ApplyResult | None = None,
    ) -> None:
        """`result`: the one `select` counted the plan into, to be completed with the outcomes."""
        self.ledger = ledger
        self.target = target
        self.admin = admin
        self.options = options or ApplyOptions()
        self.on_progress = on_progress
        self.result = result if result is not None else ApplyResult()
        self._crash = _crash_point()
        self._recorded: set[int] = set()
        self._written_ahead: dict[int, list[str]] = {}  # chunk seq -> keys recorded pending before it was sent
        self._ahead: WriteAhead | None = None
        self._handed: set[int] = set()  # chunks recorded ahead that reached the pipeline's before_send

    def _write_ahead(self, seq: int, tags: Sequence[Tag | TagFields]) -> None:
        """Record a chunk's runs pending, before it is sent (on the WriteAhead thread, or in `_before_send`)."""
        if any(map(_REPLACE, tags)):
            new = [PendingRow._make(_ROW(t)) for t in tags if not _REPLACE(t)]
            changed = [PendingRow._make(_ROW(t)) for t in tags if _REPLACE(t)]
        else:  # the common case, without a Python loop: (key, digest, manifest, file) of each tag
            new, changed = list(map(PendingRow._make, map(_ROW, tags))), []
        if new:
            self.ledger.record_pending(self.target, new)
            self._written_ahead[seq] = [row.key for row in new]
        if changed:  # if this raises, the chunk is not sent and the rows recorded above are recorded failed
            self.ledger.record_pending(self.target, changed, replace_submitted=True)
            self._written_ahead[seq] = list(map(_KEY, tags))
        if self._crash and self._crash[0] == "after-pending" and seq == self._crash[1]:
            os._exit(137)

    def _before_send(self, chunk: Any) -> None:
        if self._ahead is None:
            self._write_ahead(chunk.seq, chunk.tags)
            return
        self._handed.add(chunk.seq)  # from here on the pipeline reports an outcome for it, sent or not
        error = self._ahead.failed(chunk.seq)
        if error is not None:
            raise error  # its record failed: the chunk is not sent

    def _unsent(self) -> None:
        """Chunks recorded pending that were never sent (the apply stopped first): recorded failed, which
        they are (never applied), so that the next apply sends them."""
        for seq, keys in sorted(self._written_ahead.items()):
            if seq not in self._handed:
                self.ledger.record_failed(self.target, keys, "not sent: the apply stopped before sending it")
                del self._written_ahead[seq]

    def _record(self, outcome: ChunkOutcome[Tag]) -> None:
        if outcome.seq in self._recorded:
            return
        if self._crash and self._crash[0] == "before-outcome" and outcome.seq == self._crash[1]:
            os._exit(137)
        keys = list(map(_KEY, outcome.tags))
        r = self.result
        try:
            self._record_state(outcome, keys, r)
        except BaseException:
            if outcome.sent and outcome.state != "failed":
                r.unrecorded += len(keys)  # sent (maybe applied), its record failed: pending in the ledger
            raise
        self._recorded.add(outcome.seq)
        self._written_ahead.pop(outcome.seq, None)
        if self.on_progress is not None:
            self.on_progress(r)

    def _record_state(self, outcome: ChunkOutcome[Tag], keys: list[str], r: ApplyResult) -> None:
        if outcome.state == "submitted":
            self.ledger.record_submitted(self.target, list(zip(keys, outcome.run_ids, strict=True)))
            r.submitted += len(keys)
        elif outcome.state == "failed":  # guaranteed not applied (sent and refused, or never sent)
            # a chunk never sent may have been stopped before (some of) its runs were recorded pending
            recorded = keys if outcome.sent else self._written_ahead.get(outcome.seq, [])
            if recorded:
                self.ledger.record_failed(self.target, recorded, _why(outcome))
            if not outcome.sent:  # counted as not sent (ApplyResult.not_sent), not as refused by the engine
                if outcome.error and _why(outcome) not in r.errors:
                    r.errors.append(_why(outcome))
                return
            r.failed += len(keys)
            r.failed_keys.extend(keys[: max(0, KEEP_KEYS - len(r.failed_keys))])
            if outcome.error and _why(outcome) not in r.errors:
                r.errors.append(_why(outcome))
        else:
            self.ledger.record_unknown(self.target, keys, _why(outcome))
            r.unknown += len(keys)
            r.unknown_keys.extend(keys[: max(0, KEEP_KEYS - len(r.unknown_keys))])
            if _why(outcome) not in r.errors:
                r.errors.append(_why(outcome))

    def run(self, spool: Spool) -> ApplyResult:
        """Submit the runs of a spool (selected and encoded before anything is sent); returns the result (its
        exit_code says how it went, Ctrl-C included)."""
        opts = self.options
        started = time.monotonic()
        chunks = spool.chunks(opts.batch_size)  # stored as they are sent, unless spooled for another batch size
        if chunks is not None:
            self._ahead = WriteAhead(chunks, self._write_ahead)  # pending records made while chunks go out
            try:
                submission = self.admin.submit_chunks(
                    iter(self._ahead),
                    concurrency=opts.concurrency,
                    before_send=self._before_send,
                    timeout=opts.call_timeout,
                    runs_per_second=opts.runs_per_second,
                )
            except BaseException:  # bad arguments: nothing was sent; the thread must not outlive the call
                self._ahead.stop()
                self._unsent()
                raise
        else:
            submission = self.admin.submit_encoded(
                spool,
                batch_size=opts.batch_size,
                concurrency=opts.concurrency,
                before_send=self._before_send,
                timeout=opts.call_timeout,
                runs_per_second=opts.runs_per_second,
            )
        _RUNNING.add(submission)
        recorder = OutcomeRecorder(self._record)  # outcomes are written while the next chunks go out
        error: Exception | None = None
        try:
            for outcome in submission:
                recorder.put(outcome)
                recorder.check()  # a failed record stops the sending, as below
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (cli.py raises Terminated for it)
            for outcome in submission.close(wait=opts.interrupt_wait):
                recorder.put(outcome)
            self.result.interrupted = True
            self.result.terminated = terminated(interrupt)
        except (HatchetClientError, HatchetManifestError) as exc:
            for outcome in submission.close(wait=opts.interrupt_wait):
                recorder.put(outcome)
            error = exc
        finally:
            if self._ahead is not None:
                self._ahead.stop()
            recorder.close()  # every outcome received is recorded before this returns
            _RUNNING.discard(submission)
        try:
            self._unsent()
        except HatchetManifestError as exc:
            recorder.errors.append(exc)
        errors = [e for e in (error, *recorder.errors) if e is not None]
        for problem in dict.fromkeys(errors):
            if not isinstance(problem, HatchetClientError | HatchetManifestError):
                raise problem  # a bug, not a condition: its traceback is wanted
            if scrub(str(problem)) not in self.result.errors:
                self.result.errors.append(scrub(str(problem)))
        if (
            errors
            and isinstance(errors[0], HatchetManifestError)
            and not (self.result.submitted or self.result.unknown)
        ):
            raise errors[0]
        self.result.seconds = time.monotonic() - started
        return self.result


def _why(outcome: ChunkOutcome[Tag]) -> str:
    """The reason of an outcome, as recorded in the ledger and reported: scrubbed of secrets (an engine's
    refusal may quote what it was sent)."""
    code = f"{outcome.code}: " if outcome.code else ""
    return scrub(f"{code}{outcome.error or outcome.state}")
