"""`--set` and `--set-string` as Helm reads them (its `strvals` grammar), refusing what Helm refuses.

    a.b=1,c=x            two assignments; `.` nests maps
    list[0]=a,list[2].k=v   list indices (missing items are null), at most MAX_INDEX
    tags={a,b,c}         a list value
    path=a\\,b  dotted\\.key=1   a backslash makes the next character literal (`\\\\` is a backslash)

Keys are taken exactly as written: an empty key or part (`a..b`, `.a`, `a.`, `=1`), surrounding spaces, an
unterminated `[` or `{`, or an index that is not a number are errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hatchet_manifest.errors import ConfigError
from hatchet_manifest.text import quote

MAX_INDEX = 65536  # Helm's cap on a list index
MAX_PARTS = 100  # nesting levels of one key
MAX_TEXT = 1 << 20  # one --set argument

Path = list[str | int]


class _Reader:
    def __init__(self, text: str, flag: str) -> None:
        self.text = text
        self.flag = flag
        self.pos = 0

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.flag} {quote(self.text, 60)}: {message}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos]

    def until(self, stops: str) -> tuple[str, str | None]:
        """Characters up to an unescaped one of `stops` (consumed and returned), or to the end (None)."""
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            self.pos += 1
            if ch == "\\":
                if self.pos >= len(text):
                    raise self.fail("a backslash at the end escapes nothing")
                out.append(text[self.pos])
                self.pos += 1
            elif ch in stops:
                return "".join(out), ch
            else:
                out.append(ch)
        return "".join(out), None


def parse_set(text: str, flag: str, typed: Callable[[str], Any]) -> list[tuple[Path, Any]]:
    """The (key path, value) assignments of one `--set` argument, values typed by `typed`."""
    reader = _Reader(text, flag)
    if len(text) > MAX_TEXT:
        raise reader.fail(f"longer than {MAX_TEXT} characters")
    if not text:
        raise reader.fail("expected key=value")
    out: list[tuple[Path, Any]] = []
    while True:
        path = _key(reader)
        if not reader.at_end() and reader.peek() == "{":
            reader.pos += 1
            items: list[Any] = []
            stop: str | None = ","
            if not reader.at_end() and reader.peek() == "}":  # `{}`: an empty list
                reader.pos += 1
                stop = "}"
            while stop == ",":
                item, stop = reader.until(",}")
                if stop is None:
                    raise reader.fail("a list value `{...}` is not closed")
                items.append(typed(item))
            out.append((path, items))
            if reader.at_end():
                return out
            if reader.peek() != ",":
                raise reader.fail("expected `,` after a list value")
            reader.pos += 1
        else:
            value, stop = reader.until(",")
            out.append((path, typed(value)))
            if stop is None:
                return out
        if reader.at_end():
            raise reader.fail("expected key=value after the last `,`")


def _key(reader: _Reader) -> Path:
    path: Path = []
    while True:
        name, stop = reader.until(".=[,")
        if stop in (None, ","):
            raise reader.fail(f"expected key=value, got {name!r} with no `=`")
        if name:
            if name != name.strip():
                raise reader.fail(f"the key {name!r} has spaces around it")
            path.append(name)
        elif stop != "[" or not path:
            raise reader.fail("a key or a part of a key is empty")
        if stop == "[":
            path.extend(_indices(reader))
            if reader.at_end():
                raise reader.fail("expected `=` after `]`")
            ch = reader.peek()
            reader.pos += 1
            if ch == "=":
                return _checked(reader, path)
            if ch != ".":
                raise reader.fail(f"expected `.`, `[` or `=` after `]`, got {ch!r}")
        elif stop == "=":
            return _checked(reader, path)
        if len(path) > MAX_PARTS:
            raise reader.fail(f"a key of more than {MAX_PARTS} parts")


def _indices(reader: _Reader) -> list[int]:
    """`[0]`, `[0][1]`...: the `[` of the first is consumed."""
    out: list[int] = []
    while True:
        digits, stop = reader.until("]")
        if stop is None:
            raise reader.fail("a `[` is not closed")
        if not digits.isascii() or not digits.isdigit():
            raise reader.fail(f"a list index must be a number, got {digits!r}")
        index = int(digits)
        if index > MAX_INDEX:
            raise reader.fail(f"a list index is at most {MAX_INDEX}, got {index}")
        out.append(index)
        if reader.at_end() or reader.peek() != "[":
            return out
        reader.pos += 1


def _checked(reader: _Reader, path: Path) -> Path:
    if len(path) > MAX_PARTS:
        raise reader.fail(f"a key of more than {MAX_PARTS} parts")
    if not path or not isinstance(path[0], str):
        raise reader.fail("a key must start with a name")
    return path


def assign(out: dict[str, Any], path: Path, value: Any, where: str) -> None:
    """Set `path` in `out`, creating maps and lists (padded with null) on the way, as Helm does."""
    node: Any = out
    for part, nxt in zip(path, [*path[1:], None], strict=True):
        last = nxt is None
        if isinstance(part, str):
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: {part!r} is set in something that is not a map")
            if last:
                node[part] = value
                return
            child = node.get(part)
            fresh: Any = {} if isinstance(nxt, str) else []
            if not isinstance(child, dict | list) or isinstance(child, dict) != isinstance(fresh, dict):
                child = node[part] = fresh
            node = child
        else:
            if not isinstance(node, list):
                raise ConfigError(f"{where}: index [{part}] is set in something that is not a list")
            node.extend([None] * (part + 1 - len(node)))
            if last:
                node[part] = value
                return
            child = node[part]
            fresh = {} if isinstance(nxt, str) else []
            if not isinstance(child, dict | list) or isinstance(child, dict) != isinstance(fresh, dict):
                child = node[part] = fresh
            node = child
