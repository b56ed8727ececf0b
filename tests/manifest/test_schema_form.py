"""The manifest JSON Schema is the same whatever the pydantic version: each form the allowed versions write is
rewritten to one (`schema_form.py`). `scripts/schema_pydantic_versions.py` runs `hatchet-manifest schema` under
the real versions (slow, not part of the suite); these tests pin the rewriting on what those versions write."""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pydantic
import pytest

from hatchet_manifest.manifest.model import manifest_json_schema
from hatchet_manifest.manifest.schema_form import canonical_schema
from tests.conftest import ROOT

# The same two fields (a dict of anything, a nested model with a description, a Literal) as three pydantic
# versions write them, and the one form all three become.
PYDANTIC_2_6 = {
    "properties": {
        "input": {"type": "object", "title": "Input"},
        "options": {"allOf": [{"$ref": "#/$defs/RunOptions"}], "description": "Run options."},
        "kind": {"const": "TriggerManifest", "title": "Kind"},
        "key": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Key"},
    }
}
PYDANTIC_2_7_TO_2_9 = {
    "properties": {
        "input": {"type": "object", "title": "Input"},
        "options": {"$ref": "#/$defs/RunOptions", "description": "Run options."},
        "kind": {"const": "TriggerManifest", "enum": ["TriggerManifest"], "title": "Kind"},
        "key": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Key"},
    }
}
PYDANTIC_2_10_ON = {
    "properties": {
        "input": {"additionalProperties": True, "type": "object", "title": "Input"},
        "options": {"$ref": "#/$defs/RunOptions", "description": "Run options."},
        "kind": {"const": "TriggerManifest", "type": "string", "title": "Kind"},
        "key": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Key"},
    }
}
CANONICAL = {
    "properties": {
        "input": {"type": "object", "title": "Input"},
        "options": {"$ref": "#/$defs/RunOptions", "description": "Run options."},
        "kind": {"const": "TriggerManifest", "type": "string", "title": "Kind"},
        "key": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Key"},
    }
}


@pytest.mark.parametrize(
    "generated", [PYDANTIC_2_6, PYDANTIC_2_7_TO_2_9, PYDANTIC_2_10_ON], ids=["2.6", "2.7-2.9", "2.10-2.14"]
)
def test_every_version_form_becomes_the_canonical_one(generated: dict[str, Any]) -> None:
    before = copy.deepcopy(generated)
    assert canonical_schema(generated) == CANONICAL
    assert generated == before  # a new value: the argument is left alone
    assert canonical_schema(CANONICAL) == CANONICAL


def test_what_is_not_an_equivalent_form_is_kept() -> None:
    kept = {
        "additionalProperties": False,  # only `true` is the default
        "properties": {
            # data is never rewritten, even when it looks like a schema
            "as": {"type": "string", "default": "item"},
            "x": {"default": {"additionalProperties": True, "default": None}, "examples": [{"allOf": [{"a": 1}]}]},
            "e": {"enum": ["a", "b"]},  # two values: an enum, not a const
            "n": {"const": 3},
            # a one-item allOf whose keywords the schema already has cannot be merged up
            "m": {"allOf": [{"$ref": "#/$defs/A", "description": "inner"}], "description": "outer"},
            "default": {"type": "string"},  # a property named like a keyword is a property
        },
        "allOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    out = canonical_schema(kept)
    assert out["properties"]["x"] == kept["properties"]["x"]
    assert out["properties"]["e"] == {"enum": ["a", "b"]}
    assert out["properties"]["n"] == {"const": 3, "type": "integer"}
    assert out["properties"]["m"] == kept["properties"]["m"]
    assert out["properties"]["default"] == {"type": "string"}
    assert out["additionalProperties"] is False and out["allOf"] == kept["allOf"]


def _nodes(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        yield path, value
        for k, v in value.items():
            yield from _nodes(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, f"{path}/{i}")


def test_the_manifest_schema_is_in_the_canonical_form() -> None:
    """Under the pydantic installed here: no version-dependent form is left (a form a new pydantic writes, and
    schema_form.py does not know, shows up here as soon as it is installed, and in the script)."""
    schema = manifest_json_schema()
    assert canonical_schema(schema) == schema
    for path, node in _nodes(schema):
        assert node.get("additionalProperties") is not True, path
        assert not ("default" in node and node["default"] is None), path
        assert "enum" not in node or len(node["enum"]) > 1, path
        assert not (isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1), path
        assert "const" not in node or "type" in node, path


def test_null_is_offered_only_where_the_tool_accepts_it() -> None:
    nullable = {path for path, node in _nodes(manifest_json_schema()) if node == {"type": "null"}}
    fields = sorted({path.split("/anyOf/")[0] for path in nullable})
    assert fields == [
        "/$defs/CronEntry/properties/priority",
        "/$defs/EventEntry/properties/priority",
        "/$defs/EventEntry/properties/scope",
        "/$defs/RunEntry/properties/input_schema",
        "/$defs/RunOptions/properties/priority",
        "/$defs/ScheduleEntry/properties/priority",
    ]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "schema_pydantic_versions", ROOT / "scripts/schema_pydantic_versions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_version_script_reads_the_range_the_package_declares() -> None:
    script = _script()
    spec = script.pydantic_range()
    assert spec == ">=2.6,<3"  # if this changes, run the script: python scripts/schema_pydantic_versions.py
    assert script.lowest(spec) == "2.6.0"
    assert script.allowed(pydantic.VERSION, spec)  # the version the suite runs on is one the script can check
    assert [v for v in ["2.5.3", "2.6.0", "2.9.2", "2.10.0b1", "2.14.4", "3.0.0"] if script.allowed(v, spec)] == [
        "2.6.0",
        "2.9.2",
        "2.14.4",
    ]


def test_the_published_schema_is_a_valid_draft_2020_12_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(json.loads((ROOT / "schemas/manifest.schema.json").read_text()))
