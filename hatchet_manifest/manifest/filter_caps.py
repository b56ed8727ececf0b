"""The caps of the template sandbox's filters and tests: each charged to the render's budget, and the filters
that build strings or lists (`join`, `replace`, `indent`, `center`, `wordwrap`, `format`, `sum`, `batch`,
`slice`, `tojson`, `pprint`, `urlize`, and those that write a container as text) checked before they run.
What a value may be and what work costs is told in `caps.py`."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from types import GeneratorType
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.utils import _PassArg

from hatchet_manifest.manifest.caps import (
    FILTER_OPS,
    ITEM_SHIFT,
    LONGEST_WORD,
    MAX_VALUE_LEN,
    QUADRATIC_LIMIT,
    Meter,
    cap_len,
    cap_text,
    printf_size,
    text_size,
    weight,
)

# Filters whose cost does not depend on the size of their operands.
_CHEAP_FILTERS = frozenset(
    {
        "first",
        "last",
        "length",
        "count",
        "default",
        "d",
        "safe",
        "attr",
        "random",
        "abs",
        "round",
        "int",
        "float",
        "filesizeformat",
        "date_add",
        "sha256",
    }
)
# Filters that write their value as text (with `str`): refused for a container whose text would be too long.
_TEXT_FILTERS = {
    "string": 1,
    "sha256": 1,
    "to_json": 1,
    "capitalize": 1,
    "lower": 1,
    "upper": 1,
    "title": 1,
    "trim": 1,
    "striptags": 1,
    "truncate": 1,
    "wordcount": 1,
    "urlize": 1,
    "xmlattr": 1,
    "escape": 1,
    "e": 1,
    "forceescape": 1,
    "center": 1,
    "indent": 1,
    "replace": 1,
    "wordwrap": 1,
    "urlencode": 3,
    "safe": 1,
}
# Tests that compare their operands (their cost grows with their size).
_COMPARING_TESTS = frozenset(
    {"eq", "ne", "lt", "le", "gt", "ge", "==", "!=", "<", "<=", ">", ">=", "equalto", "greaterthan", "lessthan", "in"}
)

PreCheck = Callable[[Meter, str, list[Any], int, dict[str, Any]], None]


def _arg(args: list[Any], at: int, kwargs: dict[str, Any], name: str, default: Any) -> Any:
    return args[at] if len(args) > at else kwargs.get(name, default)


def _center(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    width = _arg(args, v + 1, kwargs, "width", 80)
    if type(width) is int and width > MAX_VALUE_LEN:
        raise SecurityError(f"the center filter's width is capped at {MAX_VALUE_LEN}")


def _indent(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    width = _arg(args, v + 1, kwargs, "width", 4)
    if type(width) is int and width > MAX_VALUE_LEN:
        raise SecurityError(f"the indent filter's width is capped at {MAX_VALUE_LEN}")
    unit = width if type(width) is int else len(width) if isinstance(width, str) else 0
    text = args[v] if isinstance(args[v], str) else str(args[v])
    lines = text.count("\n") + 1
    cap_len(len(text) + lines * max(unit, 0), "the indent filter")
    meter.charge(lines)


def _format(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    if isinstance(args[v], str):
        meter.charge(printf_size(args[v], kwargs or tuple(args[v + 1 :]), "format") >> 4)


def _join(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    env = args[0]  # eval context (pass_eval_context)
    items = args[v] if type(args[v]) in (list, tuple) else list(args[v])
    args[v] = items
    sep = _arg(args, v + 1, kwargs, "d", "")
    attribute = _arg(args, v + 2, kwargs, "attribute", None)
    shown = items
    if attribute is not None:
        getter = make_attrgetter(env.environment, attribute)
        shown = [getter(x) for x in items]
    size = (len(sep) if isinstance(sep, str) else text_size(sep)[0]) * max(len(items) - 1, 0)
    for x in shown:
        size += len(x) if type(x) is str else text_size(x)[0]
        if size > MAX_VALUE_LEN:
            break
    cap_len(size, "the join filter")
    meter.charge(len(items) + (size >> 4))


def _replace(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    text = args[v] if isinstance(args[v], str) else str(args[v])
    old = str(_arg(args, v + 1, kwargs, "old", ""))
    new = str(_arg(args, v + 2, kwargs, "new", ""))
    count = _arg(args, v + 3, kwargs, "count", None)
    n = text.count(old) if old else len(text) + 1
    if type(count) is int and count >= 0:
        n = min(n, count)
    cap_len(len(text) + n * max(0, len(new) - len(old)), "the replace filter")


def _long_word(text: str, longest: int) -> bool:
    """Whether `text` holds a run of more than `longest` non-space characters (linear: tried at word starts)."""
    return longest < len(text) and re.search(rf"(?<!\S)\S{{{longest + 1}}}", text) is not None


def _wordwrap(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    env = args[0]  # the environment (pass_environment)
    text = args[v] if isinstance(args[v], str) else str(args[v])
    width = _arg(args, v + 1, kwargs, "width", 79)
    if type(width) is not int or width < 1:
        return  # textwrap refuses it
    wrap = _arg(args, v + 3, kwargs, "wrapstring", None)
    wrap_len = len(wrap) if isinstance(wrap, str) else len(env.newline_sequence)
    lines = len(text) // width + text.count("\n") + 1
    cap_len(len(text) + lines * wrap_len, "the wordwrap filter")
    meter.charge(lines)
    longest = math.isqrt(QUADRATIC_LIMIT * width)  # textwrap cuts a long word `width` characters at a time
    if _arg(args, v + 2, kwargs, "break_long_words", True) and _long_word(text, longest):
        raise SecurityError(f"the wordwrap filter: a word longer than {longest} characters at width {width} is refused")


def _urlize(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    text = args[v] if isinstance(args[v], str) else str(args[v])
    if _long_word(text, LONGEST_WORD):
        raise SecurityError(f"the urlize filter: a word longer than {LONGEST_WORD} characters is refused")


def _sum(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    start = _arg(args, v + 2, kwargs, "start", 0)
    if not isinstance(start, str | list | tuple):
        return
    items = args[v] if type(args[v]) in (list, tuple) else list(args[v])
    args[v] = items
    attribute = _arg(args, v + 1, kwargs, "attribute", None)
    if attribute is not None:
        items = [make_attrgetter(args[0], attribute)(x) for x in items]
    total = len(start)
    for x in items:
        total += len(x) if isinstance(x, str | list | tuple) else 0
        cap_len(total, "the sum filter")
    meter.charge(len(items) * total >> 4)  # each addition copies what was added up so far


def _batch(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    size = _arg(args, v + 1, kwargs, "linecount", 1)
    if type(size) is int and size > MAX_VALUE_LEN:
        raise SecurityError(f"the batch filter's size is capped at {MAX_VALUE_LEN}")


def _slice(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    slices = _arg(args, v + 1, kwargs, "slices", 1)
    if type(slices) is int:
        if slices > MAX_VALUE_LEN:
            raise SecurityError(f"the slice filter's count is capped at {MAX_VALUE_LEN}")
        meter.charge(2 * max(slices, 0))  # each slice is a list


def _tojson(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    indent = _arg(args, v + 1, kwargs, "indent", None)
    unit = indent if type(indent) is int else len(indent) if isinstance(indent, str) else 0
    size, depth = text_size(args[v])
    meter.charge(size >> 4)
    cap_len(size + size * depth * max(unit, 0), "the tojson filter")


def _pprint(meter: Meter, name: str, args: list[Any], v: int, kwargs: dict[str, Any]) -> None:
    size, depth = text_size(args[v])
    meter.charge(size >> 4)
    cap_len(size * (1 + depth), "the pprint filter")


_PRE_CHECKS: dict[str, PreCheck] = {
    "center": _center,
    "indent": _indent,
    "format": _format,
    "join": _join,
    "replace": _replace,
    "wordwrap": _wordwrap,
    "urlize": _urlize,
    "sum": _sum,
    "batch": _batch,
    "slice": _slice,
    "tojson": _tojson,
    "pprint": _pprint,
}


def metered_filter(meter: Meter, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` (the filter `name`) charged to `meter` and checked by the caps before it runs; a filter returning a
    generator returns one that charges each item it yields."""
    pass_arg = _PassArg.from_obj(func)
    v = 0 if pass_arg is None else 1  # where the filtered value is among the arguments
    check = _PRE_CHECKS.get(name)
    factor = _TEXT_FILTERS.get(name)
    cheap = name in _CHEAP_FILTERS
    what = f"the {name} filter"

    @functools.wraps(func)
    def metered(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= v:
            return func(*args, **kwargs)
        value = args[v]
        ops = FILTER_OPS
        if not cheap:
            ops += weight(value)
            for a in args[v + 1 :]:
                ops += weight(a)
        meter.charge(ops)
        if factor is not None and type(value) is not str:
            cap_text(meter, value, what, factor)
        if check is not None:
            listed = list(args)
            check(meter, name, listed, v, kwargs)
            args = tuple(listed)
        result = func(*args, **kwargs)
        t = type(result)
        if t is GeneratorType:  # a Python generator: each item costs about two loop items
            return meter.counted(result, 2)
        shift = ITEM_SHIFT.get(t)
        if shift is None and isinstance(result, str):
            shift = 4
        if shift is not None:
            n = len(result)
            cap_len(n, what)
            meter.charge(n >> shift)
        return result

    return metered


def metered_test(meter: Meter, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A test charged to `meter`: its arguments, and its value too when it compares it."""
    pass_arg = _PassArg.from_obj(func)
    v = 0 if pass_arg is None else 1
    comparing = name in _COMPARING_TESTS

    @functools.wraps(func)
    def metered(*args: Any, **kwargs: Any) -> Any:
        ops = FILTER_OPS
        for a in args[v + (0 if comparing else 1) :]:
            ops += weight(a)
        meter.charge(ops)
        return func(*args, **kwargs)

    return metered
