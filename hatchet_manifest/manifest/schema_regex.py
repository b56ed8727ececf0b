"""Input schemas match `pattern` and `patternProperties` with RE2, in time linear in the text.

Schemas arrive in pull requests, like templates: with Python's backtracking `re`, which jsonschema uses, a
pattern such as `^(a+)+$` against `'a' * 40 + '!'` never finishes. `linear(cls)` is the jsonschema validator
class `cls` with the keywords that match patterns (`pattern`, `patternProperties`, `additionalProperties`, which
skips the properties patterns match) matching with RE2 (google-re2), with the same messages as jsonschema's.

`check_patterns` runs when a schema is loaded: a pattern RE2 cannot compile (a backreference, lookahead or
lookbehind, a repetition too large to compile) is a clear error naming the schema and the pattern, and so is
`patternProperties` in a schema that uses `unevaluatedProperties` (jsonschema matches those patterns itself, with
`re`, to find the evaluated properties). RE2 follows ECMA-262 (JSON Schema's dialect) closely for the common
syntax; `\\d` and `\\w` match ASCII characters only, and `$` matches only at the very end.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import re2

if TYPE_CHECKING:
    import jsonschema

_SCHEMA = ("additionalProperties", "additionalItems", "items", "contains", "not", "if", "then", "else",
           "propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema")  # fmt: skip
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would write every refused pattern to stderr
_CACHE_SIZE = 1024


class PatternError(ValueError):
    """A pattern RE2 cannot compile."""


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from None


def search(pattern: str, text: str) -> bool:
    return compiled(pattern).search(text) is not None


def _subschemas(schema: Any) -> Iterator[Any]:
    """The schemas directly inside `schema` (only where keywords hold schemas: not in `enum`, `const`...)."""
    if not isinstance(schema, dict):
        return
    for key in _SCHEMA:
        if isinstance(schema.get(key), dict):
            yield schema[key]
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            yield from schema[key]
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            yield from schema[key].values()


def check_patterns(schema: Any, name: str) -> None:
    """Raise ValueError naming `name` and the pattern when a pattern of `schema` cannot be matched with RE2."""
    stack = [schema]
    patterns_at: list[str] = []
    unevaluated = False
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        unevaluated = unevaluated or "unevaluatedProperties" in node
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        if isinstance(node.get("patternProperties"), dict):
            keys = [k for k in node["patternProperties"] if isinstance(k, str)]
            found += keys
            patterns_at += keys
        for pattern in found:
            try:
                compiled(pattern)
            except PatternError as exc:
                raise ValueError(
                    f"{name} uses the pattern {pattern!r}, which RE2 cannot match: {exc} (input schema patterns are "
                    "matched with RE2, in linear time: no backreferences, lookahead or lookbehind)"
                ) from None
        stack.extend(_subschemas(node))
    if unevaluated and patterns_at:
        raise ValueError(
            f"{name} combines patternProperties ({patterns_at[0]!r}) with unevaluatedProperties, which is not "
            "supported: jsonschema would match those patterns with a backtracking regular expression engine"
        )


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, pattern_properties: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for k, v in instance.items():
            if search(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for property in instance:
        if property not in properties and not any(search(p, property) for p in patterns):
            yield property


def _additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema._utils import extras_msg
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    extras = set(_additional(instance, schema))
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            error = "Additional properties are not allowed (%s %s unexpected)"
            yield ValidationError(error % extras_msg(sorted(extras, key=str)))


@functools.cache
def linear(cls: type[jsonschema.protocols.Validator]) -> type[jsonschema.protocols.Validator]:
    """`cls` matching patterns with RE2 (see the module docstring)."""
    import jsonschema

    return jsonschema.validators.extend(  # type: ignore[no-untyped-call, no-any-return]
        cls,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )
