"""Building one run from its evaluated leaves: the checks of names, input, metadata, priority, key, size and
input schema, each failure recorded with its location."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from hatchet_manifest.manifest.build_triggers import trigger_fields
from hatchet_manifest.manifest.caps import text_size
from hatchet_manifest.manifest.compile import DuplicateKeyError
from hatchet_manifest.manifest.entries import AnyEntry, Entry, Fields, ProblemLog, Skip, TemplateEntry, default_key
from hatchet_manifest.manifest.model import TemplateItem
from hatchet_manifest.manifest.opaque import unveil
from hatchet_manifest.manifest.rendered import KEY_PREFIXES, TRIGGER_KINDS, Limits, RenderedRun, canonical_json
from hatchet_manifest.manifest.validate import (
    SchemaRegistry,
    check_json,
    check_key,
    check_priority,
    check_workflow_name,
    describe,
    may_be_large,
    metadata_value,
    request_size,
    schema_errors,
    small_flat_json,
)
from hatchet_manifest.scrub import registered, scrub

CRASH_ENV = "HATCHET_MANIFEST_CRASH_AT"  # test hook: "render-bug:<ordinal>", a bug while revealing that item


def _bug_at() -> int | None:
    point, _, ordinal = os.environ.get(CRASH_ENV, "").partition(":")
    return int(ordinal) if point == "render-bug" and ordinal.isdigit() else None


def _under(path: str, roots: list[str]) -> bool:
    """Whether `path` is one of `roots` or inside one."""
    return any(path == r or path.startswith((r + ".", r + "[")) for r in roots)


def secret_in_key(key: str | None) -> str | None:
    """The problem with a key holding a secret's value (from --set, a values file or the manifest's text): a key is
    shown everywhere and recorded in the ledger, where no secret may be."""
    if key is not None and registered() and scrub(key) != key:
        return "holds the value of a secret (from --set, a values file or the manifest): keys are shown and recorded"
    return None


def reserved_key(key: str | None) -> str | None:
    """The problem with a run key that starts like a trigger's (`cron:`, `schedule:`, `event:`)."""
    if key is not None and key.startswith(KEY_PREFIXES):
        kinds = ", ".join(KEY_PREFIXES)
        return f"run keys may not start with {kinds} (the keys of crons, schedules and events): got {key!r}"
    return None


class RunBuilder:
    """Turns evaluated entries into RenderedRun values; raises Skip after recording a run's problems."""

    def __init__(self, limits: Limits, schemas: SchemaRegistry, log: ProblemLog) -> None:
        self.limits = limits
        self.schemas = schemas
        self.log = log
        self._bug_at = _bug_at()

    def build(self, entry: Entry, values: list[Any], where: str) -> RenderedRun:
        bad = False
        f = entry.fields
        workflow = entry.workflow.build(values)
        error = check_workflow_name(workflow)
        if error:
            self.log.at(entry, where, f.workflow, error, Fields.loc(f.workflow))
            bad = True
        try:
            data = entry.input.build(values)
            raw_metadata = entry.metadata.build(values)
        except DuplicateKeyError as exc:
            self.log.at(entry, where, exc.path, "two keys render to the same name", tuple(exc.path.split(".")))
            raise Skip() from None
        masked: list[str] | None = None
        if entry.uses_secret:  # secrets masked: what is previewed, digested and planned
            masked = []
            data = unveil(data, False, f.input, masked)
            raw_metadata = unveil(raw_metadata, False, f.metadata, masked)
        if not isinstance(data, dict):
            self.log.at(entry, where, f.input, f"must be an object, got {describe(data)}", (f.input,))
            raise Skip()
        small = small_flat_json(data, self.limits.max_request_bytes)
        if not small:
            self.refuse_huge(entry, where, data)
            for path, message in check_json(data, f.input):
                self.log.at(entry, where, path, message, (f.input, *path.split(".")[1:2]))
                bad = True
        metadata = self.metadata(entry, raw_metadata, where)
        priority, error = check_priority(entry.priority.build(values))
        if error:
            self.log.at(entry, where, f.priority, error, Fields.loc(f.priority))
            bad = True
        trigger = None
        if entry.section != "runs":
            trigger = trigger_fields(entry, values, where, self.log)
            bad = bad or trigger is None
        if bad or metadata is None:
            raise Skip()
        key = self.key(entry, values, workflow, data, metadata, where, trigger)
        self.check_size_and_schema(entry, where, workflow, data, metadata, small, masked)
        if trigger is not None:
            if entry.section == "crons":
                trigger = {"name": key.split(":", 1)[1], **trigger}
            elif entry.section == "events":
                trigger = {"event_key": workflow, **trigger}
        return RenderedRun(  # positional: a keyword costs a tenth of building the run
            key,
            workflow,
            data,
            metadata,
            priority,
            entry.manifest.name,
            entry.manifest.file,
            entry.line,
            where,
            None,  # secret_input, secret_metadata: see _with_secrets
            None,
            entry.uses_secret,
            TRIGGER_KINDS.get(entry.section, "run"),
            trigger,
        )

    def refuse_huge(self, entry: Entry, where: str, data: Any) -> None:
        """Skip a run whose input is far over the request limit before anything walks all of it: a template can
        build a list holding one long string many times, which checking or encoding would write out whole."""
        limit = self.limits.max_request_bytes
        if text_size(data, 8 * limit)[0] > 8 * limit:  # its JSON text has more than half as many bytes
            self.log.at(
                entry,
                where,
                entry.fields.input,
                f"the run's request is more than {4 * limit} bytes, over the {limit}-byte limit",
            )
            raise Skip()

    def metadata(self, entry: AnyEntry, raw: Any, where: str) -> dict[str, str] | None:
        if not isinstance(raw, dict):
            self.log.at(entry, where, entry.fields.metadata, f"must be an object, got {describe(raw)}")
            return None
        path = entry.fields.metadata
        out: dict[str, str] = {}
        for k, v in raw.items():  # fast path: string keys, string or int values
            if type(k) is not str or "\x00" in k:
                break
            if type(v) is str and "\x00" not in v:
                out[k] = v
            elif type(v) is int:
                out[k] = str(v)
            else:
                break
        else:
            return out
        out.clear()
        ok = True
        for k, v in raw.items():
            text = metadata_value(v)
            key_text = metadata_value(k)
            if text is None or key_text is None or "\x00" in text or "\x00" in key_text:
                shown = describe(v) if text is None else "a string with a NUL character"
                self.log.at(
                    entry,
                    where,
                    f"{path}.{k}",
                    f"metadata values must be strings, numbers or booleans, got {shown}",
                    (*Fields.loc(path), k) if isinstance(entry, Entry) else (),
                )
                ok = False
                continue
            out[key_text] = text
        return out if ok else None

    def key(
        self,
        entry: Entry,
        values: list[Any],
        workflow: str,
        data: dict[str, Any],
        metadata: dict[str, str],
        where: str,
        trigger: dict[str, Any] | None = None,
    ) -> str:
        """The run's key; a trigger's is prefixed with its kind (`cron:nightly`)."""
        prefix = f"{TRIGGER_KINDS[entry.section]}:" if entry.section != "runs" else ""
        if entry.key is None:
            return default_key(entry, workflow, data, metadata, trigger, prefix)
        f = entry.fields
        key, error = check_key(entry.key.build(values))
        if key is None or (error := secret_in_key(key) or (None if prefix else reserved_key(key))):
            self.log.at(entry, where, f.key, str(error), Fields.loc(f.key))
            raise Skip()
        return prefix + key

    def check_size_and_schema(
        self,
        entry: AnyEntry,
        where: str,
        workflow: str,
        data: dict[str, Any],
        metadata: dict[str, str],
        small: bool = False,
        masked: list[str] | None = None,
        revealed: bool = False,
    ) -> None:
        """`masked`: the paths of masked secrets (a preview cannot judge them: the apply validates their values);
        `revealed`: the values are real secrets (the messages are scrubbed of them)."""
        if not small and may_be_large(data, self.limits.max_request_bytes):
            size = request_size(workflow, canonical_json(data), canonical_json(metadata))  # as sent: compact
            if size > self.limits.max_request_bytes:
                self.log.at(
                    entry,
                    where,
                    entry.fields.input,
                    f"the run's request is {size} bytes, over the {self.limits.max_request_bytes}-byte limit",
                )
                raise Skip()
        if entry.section == "events":  # an event names no workflow: its payload has no default schema
            return
        try:
            source = entry.schema_source if isinstance(entry, Entry) else None
            validator = (
                self.schemas.for_source(source, entry.manifest.base_dir)
                if source is not None
                else self.schemas.for_workflow(workflow, entry.manifest.file)
            )
        except ValueError as exc:
            self.log.at(entry, where, "input_schema", str(exc), ("input_schema",))
            raise Skip() from None
        if validator is not None:
            errors = list(schema_errors(validator, data))
            if masked:
                errors = [(path, message) for path, message in errors if not _under(path, masked)]
            for path, message in errors:
                self.log.at(
                    entry,
                    where,
                    path,
                    scrub(message) if revealed else message,
                    (entry.fields.input, *path.split(".")[1:2]),
                )
            if errors:
                raise Skip()

    def with_secrets(self, entry: Entry, run: RenderedRun, values: list[Any], where: str) -> RenderedRun:
        """`run` (its preview) with the values of its secrets, from the values of a revealing evaluation; what
        is sent is validated as the preview was (JSON, metadata, size, input schema), messages scrubbed."""
        data = unveil(entry.input.build(values), True)
        if self._bug_at is not None and self.log.ordinal == self._bug_at:  # a bug whose message holds the values
            raise RuntimeError(f"simulated bug ({CRASH_ENV}) while revealing {data!r}")
        metadata = self.metadata(entry, unveil(entry.metadata.build(values), True), where)
        if metadata is None:
            raise Skip()
        bad = False
        for path, message in check_json(data, entry.fields.input):
            self.log.at(entry, where, path, scrub(message), (entry.fields.input, *path.split(".")[1:2]))
            bad = True
        if bad:
            raise Skip()
        self.check_size_and_schema(entry, where, run.workflow_name, data, metadata, revealed=True)
        return dataclasses.replace(
            run,
            secret_input=data if data != run.input else None,
            secret_metadata=metadata if metadata != run.additional_metadata else None,
        )

    def template_run(self, entry: TemplateEntry, item: TemplateItem, k: int) -> RenderedRun:
        """One item of a `template:` block (already parsed as data: nothing is rendered again)."""
        where = f"runs[{entry.index}] item[{k}]"
        bad = False
        for path, message in check_json(item.input, "input"):
            self.log.at(entry, where, path, message)
            bad = True
        metadata = self.metadata(entry, item.options.additional_metadata, where)
        priority, error = check_priority(item.options.priority)
        if error:
            self.log.at(entry, where, "options.priority", error)
            bad = True
        error = check_workflow_name(item.workflow_name)
        if error:
            self.log.at(entry, where, "workflow_name", error)
            bad = True
        key: str | None = None
        if item.key is not None:
            key, error = check_key(item.key)
            error = error or secret_in_key(key) or reserved_key(key)
            if error:
                self.log.at(entry, where, "key", error)
                bad = True
        if bad or metadata is None:
            raise Skip()
        key = key or default_key(entry, item.workflow_name, item.input, metadata)
        self.check_size_and_schema(entry, where, item.workflow_name, item.input, metadata)
        return RenderedRun(
            key,
            item.workflow_name,
            item.input,
            metadata,
            priority,
            entry.manifest.name,
            entry.manifest.file,
            entry.line,
            where,
        )
