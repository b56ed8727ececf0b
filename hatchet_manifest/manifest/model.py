"""The manifest model (v1): the source of the manifest JSON Schema.

Fields that may hold a Jinja template accept a string where the rendered value has another type
(`priority: "{{ p }}"`); the rendered run is checked again by `validate`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Metadata(_Strict):
    """Identity of a manifest."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Unique among manifests applied together; lowercase letters, digits, '-', '_', '.'.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels matched by `--selector`/`-l`.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Free-form notes; not used by the tool.")


class RunOptions(_Strict):
    """The `options` of a run, as the SDK's `run_workflows` takes them."""

    additional_metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Metadata attached to the run (keys and values may be templates). Values are sent as strings: "
        "integers, floats and booleans are converted; null, lists and objects are errors.",
    )
    priority: int | str | None = Field(default=None, description="Run priority, 1 (lowest) to 3 (highest).")


Matrix = dict[str, Any]


class _Looped(_Strict):
    """What every entry may have: a loop (`for_each`), a matrix, and a condition (`when`)."""

    for_each: str | list[Any] | None = Field(
        default=None,
        description="A list, or an expression yielding a list (`{{ range(count) }}`); one run (cron, schedule, "
        "event) per item.",
    )
    as_: str = Field(
        default="item", alias="as", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of the loop variable."
    )
    matrix: Matrix | None = Field(
        default=None,
        description="Named lists whose cartesian product gives one item per combination; `include` adds or "
        "extends combinations and `exclude` removes them, as CI matrices do. Each name is a variable in the "
        "templates.",
    )
    when: str | bool | None = Field(default=None, description="An expression; the item is skipped where it is false.")

    @model_validator(mode="after")
    def _when_given(self) -> _Looped:
        if "when" in self.model_fields_set and (
            self.when is None or (isinstance(self.when, str) and not self.when.strip())
        ):
            raise ValueError("`when` is empty: give an expression or true/false, or leave it out")
        return self


class RunEntry(_Looped):
    """One entry of `runs`: a single run, a loop (`for_each`), a matrix, or a `template` block."""

    workflow_name: str | None = Field(
        default=None, description="Name of the workflow to trigger (without the namespace prefix)."
    )
    key: str | None = Field(
        default=None,
        description="The run's identity for diff/apply (a template). Default: manifest name, entry index and a "
        "digest of the run's content.",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The workflow input (a template tree).")
    options: RunOptions = Field(default_factory=RunOptions, description="Run options.")
    input_schema: str | dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema for the input: inline, or a path relative to the manifest file. Default: "
        "`schemas/inputs/<workflow_name>.json` when it exists.",
    )
    template: str | None = Field(
        default=None,
        description="A Jinja block rendering to a YAML list of run entries (workflow_name, key, input, options), "
        "for what the structured form cannot say. Cannot be combined with other fields.",
    )

    @model_validator(mode="after")
    def _shape(self) -> RunEntry:
        if self.template is not None:
            others = [f for f in self.model_fields_set if f not in {"template"}]
            if others:
                raise ValueError(f"`template` cannot be combined with {', '.join(sorted(others))}")
        elif self.workflow_name is None:
            raise ValueError("each run needs `workflow_name` (or a `template`)")
        return self


_METADATA = "Metadata attached to what it starts (keys and values may be templates); values are sent as strings."
_PRIORITY = "Priority of the runs it starts, 1 (lowest) to 3 (highest)."


class CronEntry(_Looped):
    """One entry of `crons`: a recurring trigger, desired state (created, replaced, paused, deleted by apply)."""

    workflow_name: str = Field(min_length=1, description="The workflow the cron starts (without the namespace).")
    name: str = Field(
        min_length=1, description="The cron's identity (a template): unique among the manifests applied together."
    )
    expression: str = Field(
        min_length=1,
        description="5 fields (minute hour day month weekday), or 6 with seconds first, or an alias such as "
        "`@daily`; UTC.",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The input of every run it starts.")
    additional_metadata: dict[str, Any] = Field(default_factory=dict, description=_METADATA)
    priority: int | str | None = Field(default=None, description=_PRIORITY)
    enabled: bool | str = Field(default=True, description="false pauses the cron (it stays, and fires no more).")


class ScheduleEntry(_Looped):
    """One entry of `schedules`: a run started once, at a time."""

    workflow_name: str = Field(min_length=1, description="The workflow to start (without the namespace).")
    key: str | None = Field(default=None, description="The schedule's identity, as for runs (a template).")
    trigger_at: str = Field(min_length=1, description="When, in RFC 3339 (`2027-01-01T09:00:00Z`).")
    input: dict[str, Any] = Field(default_factory=dict, description="The run's input.")
    additional_metadata: dict[str, Any] = Field(default_factory=dict, description=_METADATA)
    priority: int | str | None = Field(default=None, description=_PRIORITY)
    allow_past: bool = Field(default=False, description="Accept a trigger_at in the past (it fires at once).")


class EventEntry(_Looped):
    """One entry of `events`: an event pushed once, starting the workflows whose `on_events` match its key."""

    event_key: str = Field(min_length=1, description="The event's key (matched by workflows' on_events).")
    key: str | None = Field(default=None, description="The event's identity, as for runs (a template).")
    payload: dict[str, Any] = Field(default_factory=dict, description="The event's payload (the runs' input).")
    additional_metadata: dict[str, Any] = Field(default_factory=dict, description=_METADATA)
    priority: int | str | None = Field(default=None, description=_PRIORITY)
    scope: str | None = Field(default=None, description="The event's scope (Hatchet's event filters match it).")


class Manifest(_Strict):
    """A TriggerManifest: runs to trigger on Hatchet, declared as code."""

    api_version: Literal["hatchet-manifest/v1"] = Field(alias="apiVersion", description="Always hatchet-manifest/v1.")
    kind: Literal["TriggerManifest"] = Field(description="Always TriggerManifest.")
    metadata: Metadata
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Variables for the templates (defaults; overridden by -f values files, then --set).",
    )
    runs: list[RunEntry] = Field(default_factory=list, description="The runs to trigger.")
    crons: list[CronEntry] = Field(default_factory=list, description="Recurring triggers (desired state).")
    schedules: list[ScheduleEntry] = Field(default_factory=list, description="Runs started once, at a time.")
    events: list[EventEntry] = Field(default_factory=list, description="Events pushed once each.")

    @model_validator(mode="after")
    def _declares_something(self) -> Manifest:
        if not (self.runs or self.crons or self.schedules or self.events):
            raise ValueError("a manifest declares at least one of runs, crons, schedules or events")  # loader.py too
        return self


class TemplateItem(_Strict):
    """One run produced by a `template:` block (its strings are not rendered again)."""

    workflow_name: str = Field(min_length=1)
    key: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    options: RunOptions = Field(default_factory=RunOptions)


def manifest_json_schema() -> dict[str, Any]:
    """The manifest JSON Schema, as `hatchet-manifest schema` prints it."""
    schema = Manifest.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hatchet-manifest.dev/schemas/manifest.schema.json",
        **schema,
    }
