"""The manifest model (v1): the source of the manifest JSON Schema.

Fields that may hold a Jinja template accept a string where the rendered value has another type
(`priority: "{{ p }}"`); the rendered run is checked again by `validate`. What can be known of a value before it
is rendered is checked here, when the manifest is loaded, and said in the JSON Schema: each constrained field is
an `Annotated` type holding its check and its schema side by side, so the two cannot drift apart (a test feeds
the same bad values to both). `manifest_json_schema()` puts the generated schema in one form, whatever the
pydantic version (`schema_form.py`).

A field given as null (`key: ~`, or `key:` with nothing after it) is refused, except where null means "as if
left out" (`priority`, `input_schema`, `scope`); the schema offers null exactly there, and no field has a null
default for an editor to insert.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from hatchet_manifest.manifest.schema_form import canonical_schema
from hatchet_manifest.text import quote

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$"
# A string holding a Jinja tag: `{{ }}`, `{% %}` or `{# #}` (what compile.is_template renders as a template).
TEMPLATE_PATTERN = r"\{[{%#]"

JsonDict = dict[str, Any]
_TEMPLATE: JsonDict = {"type": "string", "pattern": TEMPLATE_PATTERN}
_NON_EMPTY: JsonDict = {"type": "string", "minLength": 1, "pattern": r"\S"}
_NULL: JsonDict = {"type": "null"}


def is_template(value: object) -> TypeGuard[str]:
    """Whether `value` is a string the renderer treats as a template."""
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)


def shown(value: object) -> str:
    """A value as a load-time message names it: JSON's words for null and booleans, strings and numbers quoted,
    containers by their kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return quote(value)


def _non_empty(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"must be a non-empty string, got {shown(value)}")


def _priority(value: Any) -> int | str | None:
    if value is None or (type(value) is int and 1 <= value <= 3) or is_template(value):
        return value
    hint = " (a number is written without quotes)" if isinstance(value, str) else ""
    raise ValueError(f"priority must be 1, 2 or 3, or a template, got {shown(value)}{hint}")


def _metadata_value(value: Any) -> str | int | float | bool:
    if isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    kind = f"{value} (not a finite number)" if isinstance(value, float) else shown(value)
    raise ValueError(f"metadata values must be strings, numbers or booleans, got {kind}")


def _when(value: Any) -> str | bool | None:
    # null and blank strings pass here: _Looped says they are empty, at the entry (as it always has).
    if (
        value is None
        or isinstance(value, bool)
        or (isinstance(value, str) and (is_template(value) or not value.strip()))
    ):
        return value
    raise ValueError(f"must be true or false, or an expression such as `{{{{ x == 1 }}}}`, got {shown(value)}")


def _template_or_bool(value: Any) -> str | bool:
    if isinstance(value, bool) or is_template(value):
        return value
    raise ValueError(f"must be true or false, or a template, got {shown(value)}")


def _for_each(value: Any) -> str | list[Any]:
    if isinstance(value, list) or is_template(value):
        return value
    raise ValueError(f"must be a list, or an expression yielding one (`{{{{ range(n) }}}}`), got {shown(value)}")


def _matrix(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping of names to lists, got {shown(value)}")
    for name, part in value.items():
        if is_template(part):
            continue
        if name in ("include", "exclude"):
            if not isinstance(part, list) or not all(isinstance(x, dict) or is_template(x) for x in part):
                raise ValueError(f"{name} must be a list of mappings, got {shown(part)}")
        elif not isinstance(part, list):
            raise ValueError(f"{shown(name)} must be a list (or an expression yielding one), got {shown(part)}")
    return value


def _template_block(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"must be a Jinja block rendering a YAML list of runs, got {shown(value)}")


def _input_schema(value: Any) -> str | dict[str, Any] | None:
    if value is None or isinstance(value, dict) or (isinstance(value, str) and value.strip()):
        return value
    raise ValueError(f"must be a path (a non-empty string) or an inline JSON Schema (an object), got {shown(value)}")


# Each constrained field's type: a check that sees the value exactly as YAML gave it (PlainValidator: no coercion,
# so `2.0`, `true` and `"2"` stay what they are) and returns it or raises ValueError, and what the JSON Schema says
# of it, written out (WithJsonSchema: it does not depend on how a pydantic version renders a type).
NonEmpty = Annotated[str, PlainValidator(_non_empty), WithJsonSchema(_NON_EMPTY)]
# Absent: None (its default); given as null: refused.
OptionalNonEmpty = Annotated[str | None, PlainValidator(_non_empty), WithJsonSchema(_NON_EMPTY)]
Priority = Annotated[
    int | str | None,
    PlainValidator(_priority),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 3}, _TEMPLATE, _NULL]}),
]
MetadataValue = Annotated[
    str | int | float | bool,
    PlainValidator(_metadata_value),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
TemplateOrBool = Annotated[
    str | bool, PlainValidator(_template_or_bool), WithJsonSchema({"anyOf": [{"type": "boolean"}, _TEMPLATE]})
]
When = Annotated[str | bool | None, PlainValidator(_when), WithJsonSchema({"anyOf": [{"type": "boolean"}, _TEMPLATE]})]
_LIST_OR_TEMPLATE: JsonDict = {"anyOf": [{"type": "array"}, _TEMPLATE]}
ForEach = Annotated[str | list[Any] | None, PlainValidator(_for_each), WithJsonSchema(_LIST_OR_TEMPLATE)]
_MAPPINGS_OR_TEMPLATE: JsonDict = {
    "anyOf": [{"type": "array", "items": {"anyOf": [{"type": "object"}, _TEMPLATE]}}, _TEMPLATE]
}
MatrixSpec = Annotated[
    dict[str, Any] | None,
    PlainValidator(_matrix),
    WithJsonSchema(
        {
            "type": "object",
            "properties": {"include": _MAPPINGS_OR_TEMPLATE, "exclude": _MAPPINGS_OR_TEMPLATE},
            "additionalProperties": _LIST_OR_TEMPLATE,
        }
    ),
]
InputSchema = Annotated[
    str | dict[str, Any] | None,
    PlainValidator(_input_schema),
    WithJsonSchema({"anyOf": [_NON_EMPTY, {"type": "object"}, _NULL]}),
]
TemplateBlock = Annotated[str | None, PlainValidator(_template_block), WithJsonSchema(_NON_EMPTY)]


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


_METADATA_VALUES = (
    "Values are sent as strings: integers, floats and booleans are converted; null, lists and objects are errors."
)
_PRIORITY = "1 (lowest) to 3 (highest), or a template rendering one of them; null is as if it were left out."


class RunOptions(_Strict):
    """The `options` of a run, as the SDK's `run_workflows` takes them."""

    additional_metadata: dict[str, MetadataValue] = Field(
        default_factory=dict,
        description="Metadata attached to the run (keys and values may be templates). " + _METADATA_VALUES,
    )
    priority: Priority = Field(default=None, description="Run priority: " + _PRIORITY)


class _Looped(_Strict):
    """What every entry may have: a loop (`for_each`), a matrix, and a condition (`when`)."""

    for_each: ForEach = Field(
        default=None,
        description="A list, or an expression yielding a list (`{{ range(count) }}`); one run (cron, schedule, "
        "event) per item.",
    )
    as_: str = Field(
        default="item", alias="as", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of the loop variable."
    )
    matrix: MatrixSpec = Field(
        default=None,
        description="Named lists whose cartesian product gives one item per combination; `include` adds or "
        "extends combinations and `exclude` removes them, as CI matrices do. Each name is a variable in the "
        "templates.",
    )
    when: When = Field(
        default=None,
        description="true, false, or an expression rendering true or false (`{{ x == 1 }}`); the item is skipped "
        "where it is false.",
    )

    @model_validator(mode="after")
    def _when_given(self) -> _Looped:
        if "when" in self.model_fields_set and (
            self.when is None or (isinstance(self.when, str) and not self.when.strip())
        ):
            raise ValueError("`when` is empty: give an expression or true/false, or leave it out")
        return self


class RunEntry(_Looped):
    """One entry of `runs`: a single run, a loop (`for_each`), a matrix, or a `template` block."""

    model_config = ConfigDict(
        # What _shape checks: a `template` entry has no other field; any other entry names its workflow.
        json_schema_extra={
            "if": {"required": ["template"]},
            "then": {"maxProperties": 1},
            "else": {"required": ["workflow_name"]},
        }
    )

    workflow_name: OptionalNonEmpty = Field(
        default=None,
        description="Name of the workflow to trigger (without the namespace prefix). Required, unless the entry "
        "is a `template`.",
    )
    key: OptionalNonEmpty = Field(
        default=None,
        description="The run's identity for diff/apply (a template). Default: manifest name, entry index and a "
        "digest of the run's content.",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The workflow input (a template tree).")
    options: RunOptions = Field(default_factory=RunOptions, description="Run options.")
    input_schema: InputSchema = Field(
        default=None,
        description="A JSON Schema for the input: inline, or a path relative to the manifest file. Default: "
        "`schemas/inputs/<workflow_name>.json` when it exists; null is as if it were left out.",
    )
    template: TemplateBlock = Field(
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


_METADATA = "Metadata attached to what it starts (keys and values may be templates). " + _METADATA_VALUES
_SECTION_PRIORITY = "Priority of the runs it starts: " + _PRIORITY


class CronEntry(_Looped):
    """One entry of `crons`: a recurring trigger, desired state (created, replaced, paused, deleted by apply)."""

    workflow_name: NonEmpty = Field(description="The workflow the cron starts (without the namespace).")
    name: NonEmpty = Field(description="The cron's identity (a template): unique among the manifests applied together.")
    expression: NonEmpty = Field(
        description="5 fields (minute hour day month weekday), or 6 with seconds first, or an alias such as "
        "`@daily`; UTC.",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The input of every run it starts.")
    additional_metadata: dict[str, MetadataValue] = Field(default_factory=dict, description=_METADATA)
    priority: Priority = Field(default=None, description=_SECTION_PRIORITY)
    enabled: TemplateOrBool = Field(
        default=True, description="false pauses the cron (it stays, and fires no more); a template renders it."
    )


class ScheduleEntry(_Looped):
    """One entry of `schedules`: a run started once, at a time."""

    workflow_name: NonEmpty = Field(description="The workflow to start (without the namespace).")
    key: OptionalNonEmpty = Field(default=None, description="The schedule's identity, as for runs (a template).")
    trigger_at: NonEmpty = Field(description="When, in RFC 3339 (`2027-01-01T09:00:00Z`).")
    input: dict[str, Any] = Field(default_factory=dict, description="The run's input.")
    additional_metadata: dict[str, MetadataValue] = Field(default_factory=dict, description=_METADATA)
    priority: Priority = Field(default=None, description=_SECTION_PRIORITY)
    allow_past: bool = Field(
        default=False, strict=True, description="Accept a trigger_at in the past (it fires at once)."
    )


class EventEntry(_Looped):
    """One entry of `events`: an event pushed once, starting the workflows whose `on_events` match its key."""

    event_key: NonEmpty = Field(description="The event's key (matched by workflows' on_events).")
    key: OptionalNonEmpty = Field(default=None, description="The event's identity, as for runs (a template).")
    payload: dict[str, Any] = Field(default_factory=dict, description="The event's payload (the runs' input).")
    additional_metadata: dict[str, MetadataValue] = Field(default_factory=dict, description=_METADATA)
    priority: Priority = Field(default=None, description=_SECTION_PRIORITY)
    scope: str | None = Field(
        default=None,
        description="The event's scope (Hatchet's event filters match it); null is as if it were left out.",
    )


_SECTIONS = ("runs", "crons", "schedules", "events")


class Manifest(_Strict):
    """A TriggerManifest: runs to trigger on Hatchet, declared as code."""

    model_config = ConfigDict(
        # What _declares_something checks: at least one section with an entry.
        json_schema_extra={
            "anyOf": [{"required": [s], "properties": {s: {"minItems": 1}}} for s in _SECTIONS],
        }
    )

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


class TemplateItemOptions(_Strict):
    """The `options` of a `template:` block's item: rendered data, checked when its run is built (`build.py`),
    as a rendered `priority: "{{ p }}"` of a structured entry is (so `"2"` is 2 here)."""

    additional_metadata: dict[str, Any] = Field(default_factory=dict)
    priority: int | str | None = None


class TemplateItem(_Strict):
    """One run produced by a `template:` block (its strings are not rendered again)."""

    workflow_name: str = Field(min_length=1)
    key: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    options: TemplateItemOptions = Field(default_factory=TemplateItemOptions)


def manifest_json_schema() -> dict[str, Any]:
    """The manifest JSON Schema, as `hatchet-manifest schema` prints it: the same under every pydantic version
    the package allows (`scripts/schema_pydantic_versions.py` checks it)."""
    schema = canonical_schema(Manifest.model_json_schema(by_alias=True))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hatchet-manifest.dev/schemas/manifest.schema.json",
        **schema,
    }
