"""Answers of the REST API: JSON decoded within a depth bound, and checked field by field (`bad_shape` errors
name the field)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from hatchet_client.errors import RestError, RestFailure


@dataclass(frozen=True, slots=True)
class Answer:
    """A decoded JSON answer, with checks of its shape that raise `error` (reason `bad_shape`) naming the field."""

    value: Any
    url: str
    error: type[RestError]
    method: str = "GET"

    def fail(self, problem: str) -> NoReturn:
        raise self.error(problem, reason="bad_shape", url=self.url, method=self.method)

    def as_object(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(f"{where} is {_kind(value)}, not an object")
        return value

    def as_list(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(f"{where} is {_kind(value)}, not a list")
        return value

    def string(self, obj: dict[str, Any], key: str, where: str) -> str:
        value = obj.get(key)
        if not isinstance(value, str):
            self.fail(f"{where}.{key} is {_kind(value)}, not a string")
        return value

    def optional_string(self, obj: dict[str, Any], key: str, where: str) -> str | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            self.fail(f"{where}.{key} is {_kind(value)}, not a string")
        return value

    def optional_int(self, obj: dict[str, Any], key: str, where: str) -> int | None:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(f"{where}.{key} is {_kind(value)}, not an integer")
        return value

    def optional_bool(self, obj: dict[str, Any], key: str, where: str) -> bool | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(f"{where}.{key} is {_kind(value)}, not a boolean")
        return value

    def timestamp(self, obj: dict[str, Any], key: str, where: str) -> datetime:
        """An RFC 3339 date-time (Go writes up to nine fractional digits), as an aware datetime."""
        text = self.string(obj, key, where)
        moment = parse_rfc3339(text)
        if moment is None:
            self.fail(f"{where}.{key} {short(text, 40)!r} is not an RFC 3339 date-time")
        return moment

    def optional_object(self, obj: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, dict):
            self.fail(f"{where}.{key} is {_kind(value)}, not an object")
        return value


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 date-time with any number of fractional digits (kept to microseconds); None if it is not one."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    fraction = (match[2] or "")[:7]
    zone = "+00:00" if match[3].upper() == "Z" else match[3]
    try:
        moment = datetime.fromisoformat(match[1] + fraction + zone)
    except ValueError:
        return None
    return moment.astimezone(UTC)


def decode_json(body: bytes, max_depth: int, fail: Callable[[RestFailure, str], RestError]) -> Any:
    """The JSON value of an answer's body: UTF-8, no NaN/Infinity, nested at most `max_depth` levels; `fail`
    makes the error to raise (reason, problem)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise fail("not_json", "the answer is not UTF-8 text") from None
    # Depth can only exceed the limit when there are more brackets than the limit: most answers skip the walk.
    deep = text.count("[") + text.count("{") > max_depth
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise fail("too_deep", f"the JSON nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise fail("not_json", f"the answer is not JSON: {short(str(exc))}") from None
    if deep and _deeper_than(value, max_depth):
        raise fail("too_deep", f"the JSON nests deeper than {max_depth} levels")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` has containers nested more than `limit` levels (a top-level list or object is level 1)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "missing or null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def short(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
