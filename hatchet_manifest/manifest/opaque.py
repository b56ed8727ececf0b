"""The value `secret()` returns: opaque text that templates can place but never look into.

Previews show `***` where a secret is and the apply sends its value, so nothing a template computes may depend
on the value: a comparison, a lookup, a test, a length, a condition or a loop over it would build other runs at
apply than the preview showed. A `SecretText` therefore refuses every operation that could see its value
(comparison, hashing, len, bool, iteration, indexing, attributes, conversion to text, repr, numbers, pickling)
with a SecretUseError, and supports only being joined with text (`~`, `+`, text around `{{ }}`), which gives
another SecretText. The sandbox refuses it to filters (but `default` and `string`, which pass it through),
tests, calls and attribute or item access (`template.Environment`), and the manifest's compiler refuses
`secret()` wherever its value could not be sent (`compile.py`). Only `unveil` turns one into a string: the
mask for previews, digests and plans; the value for what is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

MASK = "***"


class SecretUseError(Exception):
    """A template used a secret's value for something other than placing it; the message is shown as is."""


WHY = "previews show *** where a secret is, so the apply would build other runs than the preview showed"


class _Ref:
    """One secret() call: the variable's name and, when the render reveals secrets, its value."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str | None) -> None:
        self.name = name
        self.value = value


def _refuse(what: str) -> NoReturn:
    raise SecretUseError(f"a secret() value cannot be {what}: {WHY}; it can only be placed in input or metadata values")


class SecretText:
    """Text made of literal parts and secrets, opaque to templates (see the module docstring)."""

    __slots__ = ("_parts",)
    _parts: tuple[str | _Ref, ...]

    def __init__(self, parts: tuple[str | _Ref, ...]) -> None:
        object.__setattr__(self, "_parts", parts)

    @classmethod
    def of(cls, name: str, value: str | None) -> SecretText:
        return cls((_Ref(name, value),))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self._parts if isinstance(p, _Ref)]

    def literal_length(self) -> int:
        return sum(len(p) for p in self._parts if isinstance(p, str))

    # -- joining with text: the only operations allowed ------------------------------------------------------
    def __add__(self, other: object) -> SecretText:
        if not isinstance(other, str | SecretText):
            _refuse("added to a number or a container (only ~ and + join it with text)")
        return join([self, other])

    def __radd__(self, other: object) -> SecretText:
        if not isinstance(other, str | SecretText):
            _refuse("added to a number or a container (only ~ and + join it with text)")
        return join([other, self])

    # -- everything else sees the value, or would in another render: refused ------------------------------
    def __setattr__(self, name: str, value: object) -> NoReturn:
        _refuse("changed")

    def __eq__(self, other: object) -> NoReturn:
        _refuse("compared")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__

    def __hash__(self) -> NoReturn:
        _refuse("used as a key or looked up (hashing)")

    def __bool__(self) -> NoReturn:
        _refuse("used as a condition (true or false)")

    def __len__(self) -> NoReturn:
        _refuse("measured (length)")

    def __iter__(self) -> Iterator[Any]:
        _refuse("iterated over")

    def __reversed__(self) -> Iterator[Any]:
        _refuse("reversed")

    def __contains__(self, item: object) -> NoReturn:
        _refuse("searched (in)")

    def __getitem__(self, item: object) -> NoReturn:
        _refuse("indexed or sliced")

    def __str__(self) -> NoReturn:
        _refuse("turned into other text (by a filter, %, format or join); use ~ to join it with text")

    def __repr__(self) -> str:
        _refuse("shown or turned into text (repr)")

    def __format__(self, spec: str) -> NoReturn:
        _refuse("formatted")

    def __int__(self) -> NoReturn:
        _refuse("converted to a number")

    __float__ = __index__ = __complex__ = __int__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _refuse("copied or pickled")

    def __arith(self, *other: object) -> NoReturn:
        _refuse("used in arithmetic (only ~ and + join it with text)")

    __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __arith
    __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = __invert__ = __arith
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = __lshift__ = __rshift__ = __matmul__ = __arith


def join(values: Iterable[Any]) -> SecretText:
    """Text and secrets joined (`~`, `+`, text around `{{ }}`): a SecretText. Other values become text as `~`
    makes them (numbers, booleans); a list or mapping holding a secret is refused by its own conversion."""
    parts: list[str | _Ref] = []
    for v in values:
        if type(v) is SecretText:
            parts.extend(v._parts)
        elif type(v) is str:
            parts.append(v)
        elif isinstance(v, str | int | float | bool) or v is None:
            parts.append(str(v))
        else:
            parts.append(str(v))  # a container: its repr of a SecretText inside refuses
    merged: list[str | _Ref] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif not (isinstance(p, str) and not p):
            merged.append(p)
    return SecretText(tuple(merged))


def concat(parts: Iterable[Any]) -> Any:
    """Jinja's `concat` (block captures, macros, filter blocks): text, or a SecretText when a secret is among
    the parts."""
    items = parts if type(parts) is list else list(parts)
    try:
        return "".join(items)
    except TypeError:
        if any(type(p) is SecretText for p in items):
            return join(items)
        raise


def masked(value: SecretText) -> str:
    return "".join(p if isinstance(p, str) else MASK for p in value._parts)


def revealed(value: SecretText) -> str:
    out = []
    for p in value._parts:
        if isinstance(p, str):
            out.append(p)
        elif p.value is None:
            raise SecretUseError(f"secret {p.name} has no value in this render")
        else:
            out.append(p.value)
    return "".join(out)


def unveil(value: Any, reveal: bool, path: str = "", masked_paths: list[str] | None = None) -> Any:
    """`value` with every SecretText replaced by its mask (or, with `reveal`, by its value); `masked_paths`
    collects where (as `input.a[0].b`, the paths problems name)."""
    t = type(value)
    if t is SecretText:
        if masked_paths is not None:
            masked_paths.append(path)
        return revealed(value) if reveal else masked(value)
    if t is dict:
        return {k: unveil(v, reveal, f"{path}.{k}", masked_paths) for k, v in value.items()}
    if t is list:
        return [unveil(v, reveal, f"{path}[{i}]", masked_paths) for i, v in enumerate(value)]
    if t is tuple:
        return tuple(unveil(v, reveal, f"{path}[{i}]", masked_paths) for i, v in enumerate(value))
    return value


def contains_secret(value: Any, depth: int = 0) -> bool:
    """Whether a (small) value holds a SecretText, looking a few levels down."""
    t = type(value)
    if t is SecretText:
        return True
    if depth > 8:
        return False
    if t is dict:
        return any(contains_secret(v, depth + 1) for v in value.values())
    if t is list or t is tuple:
        return any(contains_secret(v, depth + 1) for v in value)
    return False
