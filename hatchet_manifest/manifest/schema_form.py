"""The manifest JSON Schema in one form, whatever the pydantic version that generated it.

pydantic 2.6 to 2.14 (the range the package allows, `pydantic>=2.6,<3`) write the same model in different but
equivalent JSON: an object of any values with or without `"additionalProperties": true` (the default), a `$ref`
beside its description or wrapped in a one-item `allOf` (which draft 2020-12 no longer needs), a `Literal` as a
bare `const`, with a one-value `enum` beside it (2.7 to 2.9) or with its `type` (2.10 on). `canonical_schema` rewrites each of these to one form, and drops the
`"default": null` pydantic writes for an optional field (an editor would insert it as the completion; a field
that accepts null says so in its type). `scripts/schema_pydantic_versions.py` checks that the result is
byte-identical under the lowest allowed pydantic, the newest release of each minor version and the newest; `tests/manifest/test_schema_form.py` holds each
form the versions write.
"""

from __future__ import annotations

from typing import Any

# JSON Schema's name of the type of a `const` value.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: a bool is an int in Python
    (str, "string"),
    (int, "integer"),
    (float, "number"),
    (type(None), "null"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: Any) -> str | None:
    for python, name in _JSON_TYPES:
        if isinstance(value, python):
            return name
    return None


# Keywords whose values are data (never rewritten), and those whose values map names to schemas.
_DATA = frozenset({"const", "default", "enum", "examples"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})


def canonical_schema(schema: Any) -> Any:
    """`schema` (a generated JSON Schema, or any part of one) in the canonical form; a new value, the argument is
    left as it was."""
    if isinstance(schema, list):
        return [canonical_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DATA:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: canonical_schema(sub) for name, sub in value.items()}
        else:
            out[key] = canonical_schema(value)
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    if "default" in out and out["default"] is None:
        del out["default"]
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        only = all_of[0]
        if not set(only) & (set(out) - {"allOf"}):  # nothing to merge twice: the one item's keywords move up
            del out["allOf"]
            out.update(only)
    enum = out.get("enum")
    if isinstance(enum, list) and len(enum) == 1 and out.get("const", enum[0]) == enum[0]:
        out["const"] = out.pop("enum")[0]  # a one-value enum is a const
    if "const" in out and "type" not in out:
        kind = _json_type(out["const"])
        if kind is not None:
            out["type"] = kind
    return out
