"""Values for templates: manifest `vars` < `-f` values files (last wins) < `--set` < `--set-string` (Helm's order)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hatchet_manifest.errors import ConfigError, ManifestError
from hatchet_manifest.manifest.yamlsafe import YamlError, parse_documents, scalar

_SPLIT = re.compile(r"(?<!\\),")


@dataclass(frozen=True)
class Values:
    """What the command line says about template variables."""

    files: Sequence[str | Path] = ()
    set: Sequence[str] = ()
    set_string: Sequence[str] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> dict[str, Any]:
        """The merged overrides, applied on top of every manifest's `vars`."""
        out: dict[str, Any] = {}
        for f in self.files:
            merge(out, _read_values_file(Path(f)))
        for text in self.set:
            for k, v in _assignments(text, "--set"):
                _assign(out, k, scalar(v))
        for text in self.set_string:
            for k, v in _assignments(text, "--set-string"):
                _assign(out, k, v)
        merge(out, self.extra)
        return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `over` into `base` (maps merge, everything else replaces); returns base."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = merge(dict(base[k]), v)
        else:
            base[k] = v
    return base


def _read_values_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read values file: {exc}") from None
    try:
        docs = list(parse_documents(text, str(path)))
    except YamlError as exc:
        raise ManifestError([exc.problem]) from None
    out: dict[str, Any] = {}
    for doc in docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            raise ConfigError(f"{path}:{doc.line}: a values file must be a mapping")
        merge(out, doc.data)
    return out


def _assignments(text: str, flag: str) -> list[tuple[str, str]]:
    pairs = []
    for part in _SPLIT.split(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {text!r}: expected key=value")
        pairs.append((key.strip(), value.replace("\\,", ",")))
    return pairs


def _assign(out: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = out
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value
