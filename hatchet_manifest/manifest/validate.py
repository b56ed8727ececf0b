"""Per-run checks of rendered values: JSON types, metadata strings, priority, size, input schemas."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Undefined

if TYPE_CHECKING:
    import jsonschema

MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Bytes a run's request needs besides its JSON texts (field tags, lengths, priority, framing).
REQUEST_OVERHEAD = 64
_SCALARS = (str, int, float, bool, type(None))


def describe(value: Any) -> str:
    if isinstance(value, Undefined):
        return value._undefined_hint or f"{value._undefined_name!r} is undefined"
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", tuple: "a tuple", str: "a string", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


def check_json(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (path, message) for everything in `value` that is not plain JSON (objects with string keys)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "contains a NUL character (\\u0000), which Hatchet rejects"
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
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
    """(the key, None) or (None, the problem): a run key is a non-empty printable string (an int is taken as text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_LEN or not value.isprintable():
        return None, f"must be a non-empty string of at most {MAX_KEY_LEN} printable characters, got {value!r}"
    return value, None


def check_workflow_name(value: Any) -> str | None:
    """The problem with a workflow name, if any."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {value!r}"
    return None


def check_priority(value: Any) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3:
        return None, f"priority must be 1, 2 or 3, got {value!r}"
    return value, None


def request_size(workflow_name: str, input_json: bytes, metadata_json: bytes) -> int:
    """The size of a run's request, from the JSON texts as sent (compact, UTF-8)."""
    return len(workflow_name.encode()) + len(input_json) + len(metadata_json) + REQUEST_OVERHEAD


class SchemaRegistry:
    """Input JSON Schemas by workflow name (`<dir>/<workflow_name>.json`) or by path, loaded once."""

    def __init__(self, schema_dir: Path | None) -> None:
        self.schema_dir = schema_dir
        self._by_key: dict[str, jsonschema.protocols.Validator | None] = {}

    def for_workflow(self, workflow_name: str) -> jsonschema.protocols.Validator | None:
        if workflow_name not in self._by_key:
            path = self.schema_dir / f"{workflow_name}.json" if self.schema_dir else None
            self._by_key[workflow_name] = self._load(path) if path and path.is_file() else None
        return self._by_key[workflow_name]

    def for_source(self, source: str | dict[str, Any], base: Path) -> jsonschema.protocols.Validator:
        if isinstance(source, dict):
            return self._compile(source, "input_schema")
        path = (base / source).resolve()
        key = f"path:{path}"
        if key not in self._by_key:
            if not path.is_file():
                raise ValueError(f"input_schema: no such file {source}")
            self._by_key[key] = self._load(path)
        validator = self._by_key[key]
        assert validator is not None
        return validator

    def _load(self, path: Path) -> jsonschema.protocols.Validator:
        try:
            schema = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read input schema {path}: {exc}") from None
        return self._compile(schema, str(path))

    @staticmethod
    def _compile(schema: Any, name: str) -> jsonschema.protocols.Validator:
        if not isinstance(schema, dict | bool):
            raise ValueError(f"{name}: a JSON Schema must be an object")
        import jsonschema  # here: most renders have no schema, and it costs ~60 ms to import

        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)  # type: ignore[arg-type]  # boolean schemas are valid too
        except jsonschema.SchemaError as exc:
            raise ValueError(f"{name} is not a valid JSON Schema: {exc.message}") from None
        validator: jsonschema.protocols.Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return validator


def schema_errors(validator: jsonschema.protocols.Validator, instance: Any) -> Iterator[tuple[str, str]]:
    for err in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]):
        path = "input"
        for part in err.absolute_path:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        yield path, err.message


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
