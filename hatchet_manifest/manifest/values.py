"""Values for templates: manifest `vars` < `-f` values files (last wins) < `--set` < `--set-string` (Helm's order)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hatchet_manifest.errors import ConfigError, ManifestError
from hatchet_manifest.files import FileProblem, read_bounded
from hatchet_manifest.manifest.setvalues import assign, parse_set
from hatchet_manifest.manifest.yamlsafe import YamlError, bad_text, parse_documents, scalar

MAX_VALUES_FILE = 16 << 20  # bytes


def _string(text: str) -> str:
    return text


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
        for flag, texts, typed in (("--set", self.set, scalar), ("--set-string", self.set_string, _string)):
            for text in texts:
                why = bad_text(text)
                if why:
                    raise ConfigError(f"{flag}: {why}")
                for path, value in parse_set(text, flag, typed):
                    assign(out, path, value, f"{flag} {'.'.join(map(str, path))}")
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


def read_limited(path: Path, limit: int, what: str) -> str:
    """The text of a regular file of at most `limit` bytes (FIFOs, devices and directories are refused)."""
    try:
        data = read_bounded(path, limit)
    except FileProblem as exc:
        if exc.kind == "too_large":
            raise ConfigError(f"{path}: {what} is larger than {limit >> 20} MiB") from None
        why = "not a regular file" if exc.kind == "special" else exc.detail
        raise ConfigError(f"{path}: cannot read {what}: {why}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: {what} is not UTF-8 text") from None


def _read_values_file(path: Path) -> dict[str, Any]:
    text = read_limited(path, MAX_VALUES_FILE, "values file")
    try:
        docs = list(parse_documents(text, str(path)))
    except YamlError as exc:
        raise ManifestError([exc.problem]) from None
    if len(docs) > 1:
        raise ConfigError(f"{path}:{docs[1].line}: a values file holds one YAML document, this one has {len(docs)}")
    if not docs or docs[0].data is None:
        return {}
    doc = docs[0]
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{path}:{doc.line}: a values file must be a mapping")
    return dict(doc.data)
