"""Applying the crons, schedules and events of a plan, every step written ahead in the ledger.

- **Crons are desired state.** A missing cron is created; a changed one replaced: when its expression changes,
  the new one is created before the old one is deleted (Hatchet keeps one cron per workflow, name and expression,
  so both can exist a moment: a firing could be doubled only if both fire in that moment), otherwise the old
  one is deleted first (the same name and expression cannot exist twice; a firing due in that moment is missed);
  a cron whose only change is `enabled` is paused or resumed in place; duplicates left by a crash or a hand are
  deleted; a cron declared no more is deleted. Only crons stamped with a manifest's key are ever touched.
- **Schedules** are created once per key; a changed `trigger_at` moves the schedule (PATCH) while it has not
  fired; another change replaces it (delete, create); a schedule declared no more is deleted unless it fired.
  One that fired is history: a change to it is sent only with `--resubmit-changed`, like a run's.
- **Events** are pushed once per key, at most 1,000 a call; a changed or unknown one only when asked, like runs.

Before each create or push, its key is recorded `pending`; after, `submitted` with the engine's id (the cron,
schedule or event id), or `failed` (refused: nothing was made) or `unknown` (the answer was lost: the next plan
finds it in the engine by its stamps, or says it is unknown).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hatchet_client.errors import EventPushError, HatchetClientError, RestError

from hatchet_manifest.errors import Problem
from hatchet_manifest.ledger import Ledger, PendingRow, Target
from hatchet_manifest.manifest.build import CRASH_ENV
from hatchet_manifest.manifest.rendered import RenderedRun
from hatchet_manifest.plan.planner import Known, PlannedRun
from hatchet_manifest.plan.stamps import trigger_stamps
from hatchet_manifest.plan.trigger_fields import changes, in_the_past, replacement_needed
from hatchet_manifest.plan.triggers import EngineTriggers, TriggerIndex
from hatchet_manifest.scrub import scrub

EVENT_BATCH = 1000  # Hatchet's bound on one BulkPush


@dataclass
class TriggerResult:
    """What applying the triggers did, by kind and outcome."""

    done: dict[str, int] = field(default_factory=dict)  # "cron created", "cron deleted", ... -> count
    failed: list[str] = field(default_factory=list)  # keys
    unknown: list[str] = field(default_factory=list)
    skipped_changed: int = 0
    skipped_unknown: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: int = 0  # triggers whose every step succeeded

    def note(self, what: str, n: int = 1) -> None:
        self.done[what] = self.done.get(what, 0) + n

    @property
    def count(self) -> int:
        return sum(self.done.values())


@dataclass
class TriggerWork:
    """The triggers of a plan to act on, collected as the plan streams past (few: held in memory)."""

    items: list[PlannedRun] = field(default_factory=list)
    resubmit_changed: bool = False
    resubmit_unknown: bool = False
    past: list[Problem] = field(default_factory=list)  # schedules to create at a time already past
    skipped_changed: int = 0
    skipped_unknown: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # plan actions seen

    def add(self, p: PlannedRun, now: datetime | None = None) -> None:
        kind = p.key.split(":", 1)[0]
        self.counts[p.action] = self.counts.get(p.action, 0) + 1
        if p.action == "unchanged":
            return
        if p.action == "unknown":
            if self.resubmit_unknown and p.known is not None and p.known.state == "unknown":
                self.items.append(p)
            else:
                self.skipped_unknown.append(p.key)
            return
        if p.action == "changed" and not self.wants_change(kind, p):
            self.skipped_changed += 1
            return
        if p.action == "removed" and kind == "event":  # pushed is pushed: left alone, like a run
            return
        makes = p.action == "create" or (p.action == "changed" and (not p.held or "trigger_at" in p.changes))
        if p.run is not None and makes and in_the_past(p.run, now):  # a schedule to create or move
            at = p.run.trigger["trigger_at"] if p.run.trigger else ""
            message = f"trigger_at {at} is in the past (`allow_past: true` creates it anyway: it fires at once)"
            self.past.append(Problem(p.run.file, p.run.line, message, p.run.where, "trigger_at"))
            return
        self.items.append(p)

    def wants_change(self, kind: str, p: PlannedRun) -> bool:
        if kind == "cron":
            return True
        if kind == "schedule" and p.held:  # not fired yet: moved or replaced
            return True
        return self.resubmit_changed

    @property
    def count(self) -> int:
        return len(self.items)


class TriggerApplier:
    """Acts on collected triggers, recording every step in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        target: Target,
        hatchet: Any,
        index: TriggerIndex | None,
        stamp: bool = True,
        namespace: str = "",
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.namespace = namespace
        self.ledger = ledger
        self.target = target
        self.hatchet = hatchet
        self.index = index
        self.stamp = stamp
        self.on_progress = on_progress
        self.result = TriggerResult()

    def run(self, work: TriggerWork) -> TriggerResult:
        self.result.skipped_changed = work.skipped_changed
        self.result.skipped_unknown = list(work.skipped_unknown)
        events: list[PlannedRun] = []
        for p in work.items:
            kind = p.key.split(":", 1)[0]
            if kind == "event":
                events.append(p)
                if len(events) == EVENT_BATCH:
                    self._push(events)
                    events = []
                continue
            before = len(self.result.failed) + len(self.result.unknown)
            try:
                if kind == "cron":
                    self._cron(p)
                else:
                    self._schedule(p)
            except HatchetClientError as exc:  # a step after the ledger's record (a delete, a pause): said, and
                self.result.errors.append(f"{p.key}: {scrub(str(exc))}")  # the next plan shows what is left
            else:
                self.result.applied += before == len(self.result.failed) + len(self.result.unknown)
            if self.on_progress is not None:
                self.on_progress(1)
        self._push(events)
        return self.result

    # -- the ledger -------------------------------------------------------------------------------------------

    def _pending(self, p: PlannedRun) -> None:
        assert p.run is not None
        row = PendingRow(p.key, p.digest, p.run.manifest, p.run.file)
        replace = p.known is not None and p.known.state == "submitted"
        self.ledger.record_pending(self.target, [row], replace_submitted=replace)

    def _outcome(self, keys: Sequence[str], exc: HatchetClientError) -> None:
        message = scrub(str(exc))[:2000]
        if _refused(exc):
            self.ledger.record_failed(self.target, keys, message)
            self.result.failed.extend(keys)
        else:
            self.ledger.record_unknown(self.target, keys, message)
            self.result.unknown.extend(keys)
        self.result.errors.append(f"{', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}: {message}")

    def _metadata(self, p: PlannedRun, run: RenderedRun) -> dict[str, str]:
        metadata = run.secret_metadata if run.secret_metadata is not None else run.additional_metadata
        return {**metadata, **trigger_stamps(p.key, run.manifest, p.digest)} if self.stamp else dict(metadata)

    @staticmethod
    def _input(run: RenderedRun) -> dict[str, Any]:
        return run.secret_input if run.secret_input is not None else run.input

    def _held(self, p: PlannedRun) -> list[Known]:
        """What the engine holds under the key now (the plan's account, or the ledger's, without an index)."""
        manifest = p.run.manifest if p.run is not None else p.known.manifest if p.known is not None else ""
        if self.index is not None:
            return [h.known() for h in self.index.find(manifest, p.key)]
        if p.held:
            return list(p.held)
        if p.known is not None and p.known.run_id and p.known.state == "submitted":
            return [p.known]  # the ledger's account (no engine lookup)
        return []

    # -- crons ------------------------------------------------------------------------------------------------

    def _cron(self, p: PlannedRun) -> None:
        held = self._held(p)
        if p.action == "removed":
            self._delete_crons(held)
            self.ledger.forget(self.target, [p.key])
            return
        run = p.run
        assert run is not None and run.trigger is not None
        enabled = bool(run.trigger.get("enabled", True))
        keep = next((k for k in held if k.trigger is not None and not _cron_differs(p, k, self.namespace)), None)
        if keep is not None:  # the same cron: only enabled, or duplicates
            others = [k for k in held if k is not keep]
            if keep.trigger is not None and keep.trigger.get("enabled") != enabled:
                self.hatchet.cron.set_enabled(str(keep.run_id), enabled)
                self.result.note("cron resumed" if enabled else "cron paused")
            self._delete_crons(others, "duplicate cron deleted")
            self._pending(p)
            self.ledger.record_submitted(self.target, [(p.key, str(keep.run_id))])
            return
        old_expressions = {str(k.trigger.get("expression")) for k in held if k.trigger}
        before = [k for k in held if k.trigger is None or str(k.trigger.get("expression")) == run.trigger["expression"]]
        self._delete_crons(before, None)  # the same (workflow, name, expression) cannot exist twice
        self._pending(p)
        try:
            made = self.hatchet.cron.create(
                run.workflow_name,
                run.trigger["name"],
                run.trigger["expression"],
                self._input(run),
                self._metadata(p, run),
                run.priority,
            )
        except HatchetClientError as exc:
            self._outcome([p.key], exc)
            return
        if not enabled:
            self.hatchet.cron.set_enabled(made.id, False)
        self.ledger.record_submitted(self.target, [(p.key, made.id)])
        self._delete_crons([k for k in held if k not in before], None)  # after the new one exists: no gap
        self.result.note("cron replaced" if held and old_expressions else "cron created")

    def _delete_crons(self, crons: Iterable[Known], what: str | None = "cron deleted") -> None:
        """Delete crons (`what`: how it is counted; None: part of a replacement)."""
        for k in crons:
            try:
                self.hatchet.cron.delete(str(k.run_id))
            except RestError as exc:
                if exc.status != 404:  # gone already: what deleting wanted
                    raise
            if what is not None:
                self.result.note(what)

    # -- schedules --------------------------------------------------------------------------------------------

    def _schedule(self, p: PlannedRun) -> None:
        held = self._held(p)
        if p.action == "removed":
            for k in held:
                self._delete_schedule(k)
            self.ledger.forget(self.target, [p.key])
            return
        run = p.run
        assert run is not None and run.trigger is not None
        at = datetime.fromisoformat(str(run.trigger["trigger_at"]).replace("Z", "+00:00"))
        if p.action == "changed" and held and list(p.changes) == ["trigger_at"]:
            self._pending(p)
            self.hatchet.scheduled.update(str(held[0].run_id), at)
            self.ledger.record_submitted(self.target, [(p.key, str(held[0].run_id))])
            self.result.note("schedule moved")
            return
        for k in held:
            self._delete_schedule(k, None)
        self._pending(p)
        try:
            made = self.hatchet.scheduled.create(
                run.workflow_name, at, self._input(run), self._metadata(p, run), run.priority
            )
        except HatchetClientError as exc:
            self._outcome([p.key], exc)
            return
        self.ledger.record_submitted(self.target, [(p.key, made.id)])
        self.result.note("schedule replaced" if held else "schedule created")

    def _delete_schedule(self, k: Known, what: str | None = "schedule deleted") -> None:
        try:
            self.hatchet.scheduled.delete(str(k.run_id))
        except RestError as exc:
            if exc.status != 404:  # fired or deleted already
                raise
        if what is not None:
            self.result.note(what)

    # -- events -----------------------------------------------------------------------------------------------

    def _push(self, batch: list[PlannedRun]) -> None:
        if not batch:
            return
        rows = []
        replace = False
        for p in batch:
            assert p.run is not None
            rows.append(PendingRow(p.key, p.digest, p.run.manifest, p.run.file))
            replace = replace or (p.known is not None and p.known.state == "submitted")
        self.ledger.record_pending(self.target, rows, replace_submitted=replace)
        events = []
        for p in batch:
            run = p.run
            assert run is not None and run.trigger is not None
            event: dict[str, Any] = {
                "key": run.trigger["event_key"],
                "payload": self._input(run),
                "additional_metadata": self._metadata(p, run),
            }
            if run.priority is not None:
                event["priority"] = run.priority
            if run.trigger.get("scope"):
                event["scope"] = run.trigger["scope"]
            events.append(event)
        keys = [p.key for p in batch]
        try:
            pushed = self.hatchet.event.bulk_push(events, batch=EVENT_BATCH)
        except EventPushError as exc:
            self._outcome(keys, exc)
            return
        if os.environ.get(CRASH_ENV) == "events-pushed":  # test hook: killed between the push and its record
            os.kill(os.getpid(), signal.SIGKILL)
        self.ledger.record_submitted(self.target, [(k, e.event_id) for k, e in zip(keys, pushed, strict=True)])
        self.result.note("event pushed", len(batch))
        self.result.applied += len(batch)
        if self.on_progress is not None:
            self.on_progress(len(batch))


def _cron_differs(p: PlannedRun, k: Known, namespace: str) -> bool:
    """Whether held cron `k` is another cron than the one declared (anything but `enabled` differs)."""
    assert p.run is not None
    return replacement_needed(changes(p.run, k, namespace))


def _refused(exc: HatchetClientError) -> bool:
    """The engine refused it, or it was never sent: nothing was made."""
    if isinstance(exc, EventPushError):
        return exc.applied is False
    if isinstance(exc, RestError):
        return exc.reason == "invalid_request" or (exc.status is not None and 400 <= exc.status < 500)
    return False


def lookup_triggers(planned: object) -> TriggerIndex | None:
    """The engine's account of the triggers a plan was made with (None: a saved plan, or no engine lookup)."""
    source = getattr(planned, "triggers", None)
    return source.index if isinstance(source, EngineTriggers) else None


def merge_triggers(result: Any, work: TriggerWork, done: TriggerResult) -> None:
    """Count what was done to the triggers into an ApplyResult: their failures are the apply's (a partial apply),
    what was done is said apart from the runs (`triggers`)."""
    result.to_send += len(done.failed) + len(done.unknown)
    result.failed += len(done.failed)
    result.failed_keys += done.failed
    result.unknown += len(done.unknown)
    result.unknown_keys += done.unknown
    result.skipped_changed += done.skipped_changed
    result.skipped_unknown += len(done.skipped_unknown)
    result.skipped_unknown_keys += done.skipped_unknown
    result.errors += [e for e in done.errors if e not in result.errors]
    result.triggers = {"plan": dict(work.counts), "done": dict(sorted(done.done.items()))}
