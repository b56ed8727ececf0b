"""Crons, schedules and events in a plan: what the engine holds of the manifests' triggers, and how a declared
trigger compares with it.

The engine is the source of truth for crons and schedules: they live there, and anyone may pause, delete or
(for a schedule) fire them. For each manifest, the cron and schedule listings are read once, filtered by the
manifest's stamp (`hatchet-manifest/trigger-of:<name>`); every trigger found carries its key and digest stamps.
A trigger found is compared with the declared one field by field (what the engine says it holds, not what was
sent); the ledger is used where the engine says nothing: for events (immutable once pushed: only their stamps
are looked up, to settle a push whose answer was lost) and for schedules that fired (Hatchet drops them from
its listing once fired).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hatchet_client.config import apply_namespace
from hatchet_client.errors import HatchetClientError

from hatchet_manifest.errors import HatchetManifestError
from hatchet_manifest.manifest.build_triggers import utc_text
from hatchet_manifest.manifest.rendered import RenderedRun, kind_of_key
from hatchet_manifest.plan.planner import Action, Known, PlannedRun
from hatchet_manifest.plan.stamps import STAMP_DIGEST, STAMP_KEY, STAMP_TRIGGER_MANIFEST, user_metadata
from hatchet_manifest.plan.target import Connection
from hatchet_manifest.plan.trigger_fields import changes, in_the_past

MAX_HELD = 200_000  # triggers of one manifest read from the engine: more is refused (memory is bounded)


class TriggerLookupError(HatchetManifestError):
    """The engine could not be asked about its crons, schedules or events."""


@dataclass(frozen=True)
class Held:
    """One trigger the engine holds, stamped with a key of a manifest."""

    kind: str  # cron, schedule, event
    key: str
    id: str
    manifest: str
    workflow_name: str  # as the engine names it (namespaced); an event's key
    input: dict[str, Any]
    metadata: dict[str, str]  # as the manifests set it: without stamps and engine keys
    trigger: dict[str, Any]
    priority: int | None
    digest: str  # the digest stamp: what was sent

    def known(self) -> Known:
        return Known(
            self.key,
            self.digest,
            "submitted",
            self.id,
            self.manifest,
            self.workflow_name,
            self.input,
            self.metadata,
            self.trigger,
            self.priority,
        )


@dataclass
class Unmanaged:
    """A cron the tool does not manage: declared in code (method DEFAULT), or created by hand or another tool."""

    id: str
    workflow_name: str
    name: str
    expression: str
    method: str
    enabled: bool


def _strings(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else str(v) for k, v in user_metadata(dict(metadata)).items()}


class TriggerIndex:
    """The crons, schedules and events the engine holds for manifests, read once per manifest and kind."""

    def __init__(self, conn: Connection, since: datetime | None = None) -> None:
        self.conn = conn
        self.since = since  # events pushed before this are not looked for (the listing is by time)
        self._held: dict[tuple[str, str], dict[str, list[Held]]] = {}

    def held(self, manifest: str, kind: str) -> dict[str, list[Held]]:
        """key -> the triggers of that kind the engine holds for the manifest under that key (several when a
        crash or a hand left duplicates), newest first."""
        cached = self._held.get((manifest, kind))
        if cached is None:
            try:
                cached = self._read(manifest, kind)
            except HatchetClientError as exc:
                raise TriggerLookupError(
                    f"could not list the {kind}s of manifest {manifest!r} in the engine: {exc} "
                    "(--no-engine-lookup plans from the ledger alone)"
                ) from None
            self._held[(manifest, kind)] = cached
        return cached

    def find(self, manifest: str, key: str) -> list[Held]:
        return self.held(manifest, kind_of_key(key)).get(key, [])

    def _read(self, manifest: str, kind: str) -> dict[str, list[Held]]:
        out: dict[str, list[Held]] = {}
        for n, held in enumerate(self._rows(manifest, kind), 1):
            if n > MAX_HELD:
                raise TriggerLookupError(f"the engine holds more than {MAX_HELD} {kind}s of manifest {manifest!r}")
            out.setdefault(held.key, []).append(held)
        return out

    def _rows(self, manifest: str, kind: str) -> Iterator[Held]:
        hatchet = self.conn.hatchet
        stamp = {STAMP_TRIGGER_MANIFEST: manifest}
        if kind == "cron":
            for c in hatchet.cron.list(additional_metadata=stamp):
                key = _stamped_key(c.additional_metadata, manifest, kind)
                if key is not None and c.method == "API":
                    trigger = {"name": c.name, "expression": c.expression, "enabled": c.enabled}
                    yield _held(
                        kind, key, c.id, manifest, c.workflow_name, c.input, c.additional_metadata, trigger, c.priority
                    )
        elif kind == "schedule":
            for s in hatchet.scheduled.list(additional_metadata=stamp):
                key = _stamped_key(s.additional_metadata, manifest, kind)
                if key is None or s.run_id is not None:  # fired (the embedded engine lists it with its run)
                    continue
                trigger = {"trigger_at": _utc_text(s.trigger_at)}
                yield _held(
                    kind, key, s.id, manifest, s.workflow_name, s.input, s.additional_metadata, trigger, s.priority
                )
        elif kind == "event":
            for e in hatchet.event.list(additional_metadata=stamp, since=self.since):
                key = _stamped_key(e.additional_metadata or {}, manifest, kind)
                if key is not None:
                    payload = e.payload if isinstance(e.payload, dict) else {}
                    trigger = {"event_key": e.key, "scope": e.scope}
                    yield _held(
                        kind, key, e.event_id, manifest, e.key, payload, e.additional_metadata or {}, trigger, None
                    )

    def unmanaged_crons(self, workflows: set[str]) -> list[Unmanaged]:
        """The crons of these workflows (namespaced names) that no manifest manages, for information."""
        out: list[Unmanaged] = []
        try:
            for c in self.conn.hatchet.cron.list():
                if c.workflow_name in workflows and (c.method != "API" or STAMP_KEY not in c.additional_metadata):
                    out.append(Unmanaged(c.id, c.workflow_name, c.name, c.expression, c.method, c.enabled))
                    if len(out) >= MAX_HELD:
                        break
        except HatchetClientError as exc:
            raise TriggerLookupError(f"could not list the engine's crons: {exc}") from None
        return out


def _stamped_key(metadata: Mapping[str, Any], manifest: str, kind: str) -> str | None:
    key = metadata.get(STAMP_KEY)
    if isinstance(key, str) and metadata.get(STAMP_TRIGGER_MANIFEST) == manifest and kind_of_key(key) == kind:
        return key
    return None


def _held(
    kind: str,
    key: str,
    ident: str,
    manifest: str,
    workflow: str,
    data: Mapping[str, Any],
    metadata: Mapping[str, Any],
    trigger: dict[str, Any],
    priority: int | None,
) -> Held:
    digest = metadata.get(STAMP_DIGEST)
    return Held(
        kind,
        key,
        ident,
        manifest,
        workflow,
        dict(data),
        _strings(metadata),
        trigger,
        priority,
        digest if isinstance(digest, str) else "",
    )


def _utc_text(moment: datetime) -> str:
    return utc_text(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@dataclass
class TriggerPlanNotes:
    """What a plan learnt of the triggers beyond the actions: duplicates found, crons it does not manage."""

    duplicates: dict[str, int] = field(default_factory=dict)  # key -> triggers held under it
    unmanaged: list[Unmanaged] = field(default_factory=list)


class EngineTriggers:
    """The plan's TriggerSource: triggers compared with what the engine holds (TriggerIndex)."""

    def __init__(self, index: TriggerIndex, namespace: str = "", now: datetime | None = None) -> None:
        self.index = index
        self.namespace = namespace
        self.now = now or datetime.now(UTC)
        self.cron_workflows: set[str] = set()  # the workflows of the crons declared (namespaced)

    def plan(self, run: RenderedRun, digest: str, known: Known | None) -> PlannedRun | None:
        if run.kind == "cron":
            self.cron_workflows.add(apply_namespace(run.workflow_name, self.namespace))
        if run.kind == "event" and known is not None and known.state == "submitted":
            return None  # pushed, and recorded: the engine is not asked (an event does not change once pushed)
        held = self.index.find(run.manifest, run.key)
        if held:
            accounts = [h.known() for h in held]
            diffs = [changes(run, k, self.namespace) for k in accounts]
            best = min(range(len(held)), key=lambda i: len(diffs[i]))  # the one closest to what is declared
            fields = diffs[best] + (["duplicates"] if len(held) > 1 else [])
            action: Action
            if run.kind == "event":  # pushed: it is what it was; the digest says whether the declaration moved
                action = "unchanged" if held[best].digest == digest else "changed"
            else:
                action = "changed" if fields else "unchanged"
            return PlannedRun(action, run.key, digest, run, accounts[best], tuple(fields), tuple(accounts))
        if run.kind == "cron":  # the engine is the truth: not there is not there (deleted by hand, or never made)
            return PlannedRun("create", run.key, digest, run, known)
        if run.kind == "schedule":
            future = not in_the_past(run, self.now)
            if known is None or known.state == "failed" or (future and known.state != "submitted"):
                return PlannedRun("create", run.key, digest, run, known)
            if known.state == "submitted" and known.digest == digest and future:  # deleted before its time
                return PlannedRun("create", run.key, digest, run, known, ("deleted in the engine",))
        return None  # events, and schedules that fired: from the ledger

    def removed(self, known: Known) -> Known:
        held = self.index.find(known.manifest, known.key)
        return held[0].known() if held else known

    def held_keys(self, manifests: list[str] | tuple[str, ...] | Any) -> list[Known]:
        out: list[Known] = []
        for manifest in manifests:
            for kind in ("cron", "schedule"):
                out += [hs[0].known() for hs in self.index.held(manifest, kind).values()]
        return out
