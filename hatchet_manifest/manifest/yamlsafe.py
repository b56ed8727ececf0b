"""Safe YAML parsing that keeps source lines, rejects duplicate keys and refuses alias bombs.

Scalars are typed by the YAML 1.2 core schema, not PyYAML's YAML 1.1 rules: `on`, `no` and `yes` stay
strings, `0755` is the integer 755, `0o755` is octal, `1e3` is a float, and timestamps stay strings.
Only the core schema's tags are accepted (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq`, `!!map`),
and an explicit tag must fit its value. Nesting is capped before PyYAML's recursive composer can overflow the
stack, recursive aliases are refused, and what aliases expand to is counted against a cap (alias bombs), while
plain data of any size within the file size is accepted. Text must be valid Unicode (no lone surrogates).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hatchet_manifest.errors import Problem
from hatchet_manifest.text import quote

Path_ = tuple[str | int, ...]

# Nodes that aliases expand to, per document (every expansion counts; plain data does not).
MAX_ALIAS_NODES = 200_000
# Nesting levels of collections; the composer recurses on each, so this stays well under the stack's limit.
MAX_DEPTH = 100

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_SCALAR_TAGS = (_STR, _INT, _FLOAT, _BOOL, _NULL)


class _CoreLoader(yaml.SafeLoader):
    """SafeLoader whose implicit scalar resolution follows the YAML 1.2 core schema."""

    yaml_implicit_resolvers = {}  # noqa: RUF012 - PyYAML's class-level registry, filled below

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", mark)
            node: Node = super().compose_node(parent, index)  # type: ignore[assignment]
            return node
        finally:
            self._depth -= 1


def _resolver(tag: str, pattern: str, first: list[str]) -> None:
    _CoreLoader.add_implicit_resolver(tag, re.compile(pattern), first)


_resolver(_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF"))
_resolver(_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789"))
_resolver(
    _FLOAT,
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    list("-+.0123456789"),
)
_resolver(_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])
_resolver(_MERGE, r"^(?:<<)$", ["<"])


def scalar(text: str) -> Any:
    """Type one plain scalar the way a manifest would (used by `--set k=v`)."""
    for tag, regexp in _CoreLoader.yaml_implicit_resolvers.get(text[:1] if text else "", []):
        if regexp.match(text):
            return _typed(tag, text)
    return text


def _fits(tag: str, value: str) -> bool:
    """Whether an explicitly tagged scalar's text is a valid value of its tag (`!!bool maybe` is not)."""
    if tag == _STR:
        return True
    return any(t == tag and r.match(value) for t, r in _CoreLoader.yaml_implicit_resolvers.get(value[:1], []))


def bad_text(value: str) -> str | None:
    """Why `value` is not valid text (a lone surrogate cannot be encoded, sent or stored), or None."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate (\\u{ord(value[exc.start]):04x}) is not valid text"
    return None


def _typed(tag: str, value: str) -> Any:
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value.lower() == "true"
    if tag == _INT:
        if value.startswith(("0o", "0x")):
            return int(value, 0)
        return int(value, 10)
    if tag == _FLOAT:
        low = value.lower()
        if low.endswith("inf"):
            return -math.inf if low.startswith("-") else math.inf
        if low == ".nan":
            return math.nan
        return float(value)
    return value


class YamlError(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


@dataclass
class Document:
    """One YAML document: its plain data and the source line of every path in it."""

    file: str
    line: int
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.built: set[int] = set()  # nodes built once: building one again is an alias expanding
        self.stack: set[int] = set()  # nodes being built: meeting one again is a recursive alias
        self.alias_nodes = 0

    def fail(self, node: Node, message: str) -> YamlError:
        return YamlError(Problem(self.file, node.start_mark.line + 1, message))

    def build(self, node: Node, path: Path_) -> Any:
        key = id(node)
        if key in self.built:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise self.fail(node, f"aliases expand to more than {MAX_ALIAS_NODES} nodes (YAML alias bomb?)")
        if isinstance(node, ScalarNode):
            self.built.add(key)
            return self.scalar(node)
        if key in self.stack:
            raise self.fail(node, "a recursive alias (an anchor used inside itself)")
        if len(path) >= MAX_DEPTH:
            raise self.fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        self.stack.add(key)
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    raise self.fail(node, f"unsupported YAML tag {node.tag}")
                out = []
                for i, item in enumerate(node.value):
                    self.lines.setdefault((*path, i), item.start_mark.line + 1)
                    out.append(self.build(item, (*path, i)))
                return out
            if isinstance(node, MappingNode):
                if node.tag != _MAP:
                    raise self.fail(node, f"unsupported YAML tag {node.tag}")
                return self.mapping(node, path)
            raise self.fail(node, "unsupported YAML node")
        finally:
            self.stack.discard(key)
            self.built.add(key)

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(node, f"unsupported YAML tag {node.tag}")
        why = bad_text(node.value)
        if why:
            raise self.fail(node, why)
        if node.tag == _STR:
            return node.value
        if not _fits(node.tag, node.value):
            raise self.fail(node, f"not a valid {node.tag.rsplit(':', 1)[-1]}: {quote(node.value, 40)}")
        try:
            return _typed(node.tag, node.value)
        except ValueError:
            raise self.fail(node, f"not a valid {node.tag.rsplit(':', 1)[-1]}: {quote(node.value, 40)}") from None

    def mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        merged: dict[str, Any] = {}
        merge_line = 0
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                if merge_line:
                    raise self.fail(key_node, f"duplicate merge key << (first at line {merge_line})")
                merge_line = key_node.start_mark.line + 1
                for source in value_node.value if isinstance(value_node, SequenceNode) else [value_node]:
                    value = self._merge_source(source, path)
                    if not isinstance(value, dict):
                        raise self.fail(value_node, "a merge key (<<) takes a mapping or a list of mappings")
                    for k, v in value.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self.fail(key_node, "mapping keys must be scalars")
            key = key_node.value
            why = bad_text(key)
            if why:
                raise self.fail(key_node, why)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise self.fail(key_node, f"duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = line
            self.lines[(*path, key)] = line
            out[key] = self.build(value_node, (*path, key))
        for k, v in merged.items():
            out.setdefault(k, v)
        return out

    def _merge_source(self, source: Node, path: Path_) -> Any:
        """A mapping merged in with `<<`: its lines count only for the keys the mapping itself does not set."""
        saved, self.lines = self.lines, {}
        try:
            value = self.build(source, path)
        finally:
            scratch, self.lines = self.lines, saved
        for loc, line in scratch.items():
            self.lines.setdefault(loc, line)
        return value


def _char(character: int | str) -> str:
    code = character if isinstance(character, int) else ord(character[:1] or "\0")
    return f"U+{code:04X}"


def _reader_error(file: str, text: str, exc: yaml.reader.ReaderError) -> YamlError:
    line = text.count("\n", 0, exc.position) + 1
    return YamlError(Problem(file, line, f"invalid YAML: control character {_char(exc.character)} in the text"))


def parse_documents(text: str, file: str) -> Iterator[Document]:
    """Parse every document of a YAML stream; raises YamlError with the file and line."""
    try:
        loader = _CoreLoader(text)
    except yaml.reader.ReaderError as exc:  # checked for unprintable characters before any parsing
        raise _reader_error(file, text, exc) from None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder(file)
            data = builder.build(node, ())
            yield Document(file, node.start_mark.line + 1, data, builder.lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlError(Problem(file, line, f"invalid YAML: {exc.problem or exc.context}")) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(file, text, exc) from None
    except yaml.YAMLError as exc:
        raise YamlError(Problem(file, None, f"invalid YAML: {exc}")) from None
    except RecursionError:  # a safety net: MAX_DEPTH keeps the composer far from the stack's limit
        raise YamlError(Problem(file, None, f"invalid YAML: nesting deeper than {MAX_DEPTH} levels")) from None
    finally:
        loader.dispose()
