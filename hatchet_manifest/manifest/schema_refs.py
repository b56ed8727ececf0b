"""`$ref` in input schemas: only references inside the schema itself, each resolvable, none looping forever.

Nothing is ever fetched: a reference to a URL, a file or another document is an error naming it. A reference that
leads back to itself without descending into the input (`{"$ref": "#"}` at the root, two `$defs` referring to each
other through `allOf`) would make validation recurse without end, and is refused when the schema is loaded.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

from hatchet_manifest.text import quote

# Keywords whose subschemas apply to the same instance (not to a part of it): recursion through them never ends.
_SAME_INSTANCE_LISTS = ("allOf", "anyOf", "oneOf")
_SAME_INSTANCE_ONE = ("not", "if", "then", "else")
_SAME_INSTANCE_MAPS = ("dependentSchemas",)
MAX_REFS = 10_000


def _where(name: str) -> str:
    """The schema's name before a message, unless the message is already placed under `input_schema`."""
    return "" if name == "input_schema" else f"{name}: "


class SchemaRefError(ValueError):
    """A `$ref` that cannot be followed."""


def check_refs(schema: Any, name: str) -> None:
    """Raise SchemaRefError for a reference outside the schema, one that resolves to nothing, or a loop."""
    for count, (_, ref) in enumerate(_refs(schema), 1):
        if count > MAX_REFS:
            raise SchemaRefError(f"{_where(name)}more than {MAX_REFS} $ref")
        resolve(schema, ref, name)
    for start, _ in _refs(schema):
        _check_no_loop(schema, start, name)


def resolve(schema: Any, ref: str, name: str) -> Any:
    """The subschema `ref` ("#", "#/json/pointer" or "#anchor") points to in `schema`."""
    shown = quote(ref)
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise SchemaRefError(
            f"{_where(name)}$ref {shown} points outside the schema: only references inside it (#/...) are followed, "
            "and nothing is fetched"
        )
    fragment = urllib.parse.unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        for node in _nodes(schema):
            if node.get("$anchor") == fragment or node.get("$dynamicAnchor") == fragment:
                return node
        raise SchemaRefError(f"{_where(name)}$ref {shown}: no $anchor {fragment!r} in the schema")
    target: Any = schema
    for raw in fragment.split("/")[1:] if fragment else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise SchemaRefError(f"{_where(name)}$ref {shown} points to nothing in the schema")
    return target


def _check_no_loop(schema: Any, start: dict[str, Any], name: str) -> None:
    """Follow what applies to the same instance from `start`; meeting `start` again is an endless recursion."""
    seen: set[int] = set()
    todo = list(_same_instance(schema, start, name))
    while todo:
        node = todo.pop()
        if node is start:
            ref = start.get("$ref", start.get("$dynamicRef"))
            raise SchemaRefError(
                f"{_where(name)}$ref {ref!r} leads back to itself without descending into the input: validation would "
                "never finish"
            )
        if id(node) in seen or not isinstance(node, dict):
            continue
        seen.add(id(node))
        todo.extend(_same_instance(schema, node, name))


def _same_instance(schema: Any, node: dict[str, Any], name: str) -> Iterator[Any]:
    for key in ("$ref", "$dynamicRef"):
        if isinstance(node.get(key), str):
            yield resolve(schema, node[key], name)
    for key in _SAME_INSTANCE_LISTS:
        if isinstance(node.get(key), list):
            yield from node[key]
    for key in _SAME_INSTANCE_ONE:
        if isinstance(node.get(key), dict):
            yield node[key]
    for key in _SAME_INSTANCE_MAPS:
        if isinstance(node.get(key), dict):
            yield from node[key].values()


def _refs(schema: Any) -> Iterator[tuple[dict[str, Any], str]]:
    for node in _nodes(schema):
        for key in ("$ref", "$dynamicRef"):
            if key in node:
                yield node, node[key]


_DATA = frozenset({"const", "enum", "default", "examples"})  # values that are instances, not schemas


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every subschema object (iteratively: a deep schema cannot overflow the stack)."""
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            yield node
            todo.extend(v for k, v in node.items() if k not in _DATA and isinstance(v, dict | list))
        elif isinstance(node, list):
            todo.extend(v for v in node if isinstance(v, dict | list))
