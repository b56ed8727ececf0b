"""Per-run checks of rendered values: JSON types, metadata strings, keys, workflow names, priority, size, and
the errors of an input schema applied to a run (the schemas themselves are loaded by `schema_registry.py`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jinja2 import Undefined

from hatchet_manifest.manifest.schema_registry import DEFAULT_SCHEMA_DIR as DEFAULT_SCHEMA_DIR
from hatchet_manifest.manifest.schema_registry import MAX_SCHEMA_BYTES as MAX_SCHEMA_BYTES
from hatchet_manifest.manifest.schema_registry import MAX_SCHEMA_DEPTH as MAX_SCHEMA_DEPTH
from hatchet_manifest.manifest.schema_registry import SchemaRegistry as SchemaRegistry
from hatchet_manifest.manifest.schema_registry import json_depth_over as json_depth_over
from hatchet_manifest.manifest.schema_registry import repository_root as repository_root
from hatchet_manifest.text import QUOTE_LIMIT, quote, shorten, unsafe_char_problem

if TYPE_CHECKING:
    import jsonschema

MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Bytes a run's request needs besides its JSON texts (field tags, lengths, priority, framing).
REQUEST_OVERHEAD = 64
_SCALARS = (str, int, float, bool, type(None))


def describe(value: Any) -> str:
    if isinstance(value, Undefined):
        return (
            shorten(value._undefined_hint, 200)
            if value._undefined_hint
            else f"{quote(value._undefined_name)} is undefined"
        )
    if value is None:
        return "null"
    names = {
        dict: "an object",
        list: "a list",
        tuple: "a tuple",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), "a value that is not JSON")


def check_json(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (path, message) for everything in `value` that is not plain JSON (objects with string keys)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "contains a NUL character (\\u0000), which Hatchet rejects"
    elif isinstance(value, dict):
        for k, v in value.items():
            shown = k if type(k) is str and len(k) <= QUOTE_LIMIT else shorten(str(k))
            sub = f"{path}.{shown}" if path else shown
            if not isinstance(k, str):
                yield sub, f"object keys must be strings, got {describe(k)}"
            elif "\x00" in k:
                yield sub, "key contains a NUL character (\\u0000)"
            if type(v) is str:  # fast path for the common leaves
                if "\x00" in v:
                    yield sub, "contains a NUL character (\\u0000), which Hatchet rejects"
            elif type(v) is not int:
                yield from check_json(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if type(v) is not int and type(v) is not str:
                yield from check_json(v, f"{path}[{i}]")
            elif type(v) is str and "\x00" in v:
                yield f"{path}[{i}]", "contains a NUL character (\\u0000), which Hatchet rejects"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, f"{value} is not a JSON number"
    elif isinstance(value, Undefined):
        yield path, describe(value)
    elif not isinstance(value, _SCALARS):
        hint = " (add `| list`)" if isinstance(value, tuple | range) or hasattr(value, "__next__") else ""
        yield path, f"{describe(value)} is not a JSON value{hint}"


def metadata_value(value: Any) -> str | None:
    """The string a metadata value is sent as, or None when it cannot be one."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return None


MAX_KEY_LEN = 512


def check_key(value: Any) -> tuple[str | None, str | None]:
    """(the key, None) or (None, the problem): a run key is a non-empty printable string (an int is taken as text).

    Printable excludes every control, bidi and invisible character (hatchet_manifest.text.UNSAFE): keys are shown
    in plans and tables, and must not be able to forge them."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_KEY_LEN and value.isprintable():
        return value, None
    problem = unsafe_char_problem(value) if isinstance(value, str) and len(value) <= MAX_KEY_LEN else None
    if problem is not None:
        return None, f"{problem}: a key must be printable, got {quote(value)}"
    return None, f"must be a non-empty string of at most {MAX_KEY_LEN} printable characters, got {quote(value)}"


def check_workflow_name(value: Any) -> str | None:
    """The problem with a workflow name, if any: a non-empty string without control, bidi or invisible characters
    (names are shown in plans and tables, and must not be able to forge them)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {quote(value)}"
    if value.isprintable():  # the common case, in C
        return None
    problem = unsafe_char_problem(value)
    if problem is not None:
        return f"{problem}, got {quote(value)}"
    return None


def check_priority(value: Any) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # "²".isdigit() too
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3:
        return None, f"priority must be 1, 2 or 3, got {quote(value)}"
    return value, None


def request_size(workflow_name: str, input_json: bytes, metadata_json: bytes) -> int:
    """The size of a run's request, from the JSON texts as sent (compact, UTF-8)."""
    return len(workflow_name.encode()) + len(input_json) + len(metadata_json) + REQUEST_OVERHEAD


def schema_errors(validator: jsonschema.protocols.Validator, instance: Any) -> Iterator[tuple[str, str]]:
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:  # a safety net: looping $refs are refused when the schema is loaded
        yield "input", "the input schema recursed too deeply to check this input"
        return
    except Exception as exc:  # noqa: BLE001 - jsonschema/referencing failures become the run's problem, located
        yield "input", f"the input schema cannot be applied: {shorten(str(exc), 200)}"
        return
    for err in errors:
        path = "input"
        for part in err.absolute_path:
            path += f"[{part}]" if isinstance(part, int) else f".{shorten(str(part))}"
        yield path, _schema_message(err.message, err.instance)


def _schema_message(message: str, instance: Any) -> str:
    """jsonschema's message with the instance it quotes (`'...' is not of type 'integer'`) shortened."""
    if len(message) <= 2 * QUOTE_LIMIT:
        return message
    try:
        shown = repr(instance)
    except RecursionError:
        shown = ""
    if shown and len(shown) > QUOTE_LIMIT and shown in message:
        message = message.replace(shown, quote(instance))
    return shorten(message, 4 * QUOTE_LIMIT)


def small_flat_json(data: dict[str, Any], limit: int) -> bool:
    """True when `data` is surely valid and small: string keys, int/bool/None or NUL-free string values."""
    budget = limit // 6 - 2
    for k, v in data.items():
        if type(k) is not str or "\x00" in k:
            return False
        t = type(v)
        if t is str:
            if "\x00" in v:
                return False
            budget -= len(v) + len(k) + 4
        elif (t is int and -(1 << 63) <= v < (1 << 64)) or t is bool or v is None:
            budget -= len(k) + 8
        else:
            return False
    return budget > 0


def may_be_large(value: Any, limit: int) -> bool:
    """A cheap upper bound on the JSON size: False when the value surely fits (6 bytes per char covers escapes)."""
    budget = limit // 6
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            budget -= len(v) + 2
        elif isinstance(v, dict):
            budget -= 2 * len(v)
            for k, x in v.items():
                budget -= len(k) + 3
                stack.append(x)
        elif isinstance(v, list):
            budget -= len(v) + 2
            stack.extend(v)
        elif type(v) is int and not -(10**20) < v < 10**20:
            budget -= len(str(v))
        else:
            budget -= 4  # other numbers are at most ~24 bytes; 6 * 4 covers them
        if budget < 0:
            return True
    return False
