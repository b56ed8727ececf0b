"""Manifest files -> positioned documents -> validated models. Every problem carries file:line."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hatchet_manifest.errors import ConfigError, ManifestError, Problem
from hatchet_manifest.manifest.model import Manifest
from hatchet_manifest.manifest.selector import Selector
from hatchet_manifest.manifest.values import read_limited
from hatchet_manifest.manifest.yamlsafe import Document, Path_, YamlError, parse_documents

SUFFIXES = (".yaml", ".yml")
MAX_MANIFEST_FILE = 64 << 20  # bytes
SECTIONS = ("runs", "crons", "schedules", "events")


@dataclass(frozen=True)
class LoadedManifest:
    """A validated manifest and the document it came from (for source lines)."""

    model: Manifest
    doc: Document

    @property
    def name(self) -> str:
        return self.model.metadata.name

    @property
    def file(self) -> str:
        return self.doc.file

    @property
    def base_dir(self) -> Path:
        return Path(self.doc.file).parent


def _find(paths: Iterable[str | Path]) -> tuple[list[tuple[Path, bool]], list[Problem]]:
    """(file, named on the command line) pairs: a file found in a directory may be data (a values file)."""
    files: list[tuple[Path, bool]] = []
    problems: list[Problem] = []
    seen: dict[Path, int] = {}  # a file named twice (or inside a directory also named) is read once

    def add(file: Path, named: bool = False) -> None:
        real = file.resolve()
        if real not in seen:
            seen[real] = len(files)
            files.append((file, named))
        elif named:
            files[seen[real]] = (files[seen[real]][0], True)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(str(path), None, "no *.yaml or *.yml files in this directory"))
            for file in found:
                add(file)
        elif path.exists():
            add(path, named=True)
        else:
            problems.append(Problem(str(path), None, "no such file or directory"))
    return files, problems


def format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def split_where(loc: Sequence[str | int]) -> tuple[str, str]:
    """("runs", 0, "input", "n") -> ("runs[0]", "input.n"); the same for an entry of every section."""
    if len(loc) >= 2 and loc[0] in SECTIONS and isinstance(loc[1], int):
        return f"{loc[0]}[{loc[1]}]", format_loc(loc[2:])
    return "", format_loc(loc)


def _data_path(data: Any, loc: Sequence[str | int]) -> Path_:
    """The longest prefix of a pydantic error location that exists in the data (drops union member tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[int(part)]
        else:
            break
        path.append(part)
    return tuple(path)


def _message(err: Any, path: Path_, loc: Sequence[str | int]) -> tuple[Path_, str]:
    kind = err["type"]
    if kind == "extra_forbidden":
        return path[:-1], f"unknown field {path[-1]!r}" if path else "unknown field"
    if kind == "missing":
        return path, f"missing required field {loc[len(path)]!r}" if len(loc) > len(path) else "missing field"
    msg = str(err["msg"])
    return path, msg.removeprefix("Value error, ")


def pydantic_problems(exc: ValidationError, doc: Document) -> list[Problem]:
    """One problem per place: the alternatives of one field joined with "or" (a value that is neither of a union's
    types), different fields' problems reported at the same place (a missing field, an unknown one) with ";"."""
    grouped: dict[Path_, dict[tuple[Any, ...], list[str]]] = {}
    lines: dict[Path_, int] = {}
    for err in exc.errors():
        loc = tuple(err["loc"])
        full = _data_path(doc.data, loc)
        path, msg = _message(err, full, loc)
        lines.setdefault(path, doc.line_of(full))
        field = loc[len(path) : len(path) + 1] if err["type"] in ("missing", "extra_forbidden") else ()
        alternatives = grouped.setdefault(path, {}).setdefault(field, [])
        if msg not in alternatives:
            alternatives.append(msg)
    problems = []
    for path, fields in grouped.items():
        where, sub = split_where(path)
        message = "; ".join(" or ".join(msgs) for msgs in fields.values())
        problems.append(Problem(doc.file, lines[path], message, where, sub))
    return problems


NOTHING_DECLARED = "a manifest declares at least one of runs, crons, schedules or events"


def _declares_manifest(data: Any) -> bool:
    return isinstance(data, dict) and ("apiVersion" in data or "kind" in data)


def load_document(doc: Document) -> tuple[LoadedManifest | None, list[Problem]]:
    if not isinstance(doc.data, dict):
        return None, [Problem(doc.file, doc.line, "a manifest must be a mapping (apiVersion, kind, metadata, runs)")]
    if doc.data.get("kind") == "Plan" and str(doc.data.get("apiVersion", "")).startswith("hatchet-manifest/"):
        return None, [Problem(doc.file, doc.line, "a saved plan, not a manifest: apply it with `apply PLAN.json`")]
    if not _declares_manifest(doc.data):
        return None, [
            Problem(
                doc.file,
                doc.line,
                "not a manifest: it has no apiVersion or kind (a values file? pass it with -f/--values)",
            )
        ]
    try:
        return LoadedManifest(Manifest.model_validate(doc.data), doc), []
    except ValidationError as exc:
        problems = pydantic_problems(exc, doc)
        if not any(isinstance(doc.data.get(s), list) and doc.data[s] for s in SECTIONS) and not any(
            p.where in SECTIONS or p.message.startswith("a manifest declares") for p in problems
        ):  # said with the other problems: the model's own check runs only once every field is valid
            problems.append(Problem(doc.file, doc.line, NOTHING_DECLARED))
        return None, problems


def load(paths: Iterable[str | Path], selector: Selector | None = None) -> list[LoadedManifest]:
    """Load every manifest under `paths`; raises ManifestError listing all problems found."""
    manifests, problems = load_partial(paths, selector)
    if problems:
        raise ManifestError(problems)
    return manifests


def load_partial(
    paths: Iterable[str | Path], selector: Selector | None = None
) -> tuple[list[LoadedManifest], list[Problem]]:
    """The manifests under `paths` that load, and the problems of those that do not (so that the valid ones can
    still be rendered and every problem reported at once)."""
    files, problems = _find(paths)
    manifests: list[LoadedManifest] = []
    for file, named in files:
        try:
            text = read_limited(file, MAX_MANIFEST_FILE, "manifest")
        except ConfigError as exc:
            problems.append(Problem("", None, str(exc)))
            continue
        try:
            docs = [doc for doc in parse_documents(text, str(file)) if doc.data is not None]
            if not named and not any(_declares_manifest(doc.data) for doc in docs):
                continue  # data beside the manifests (a values file), found by a directory scan
            for doc in docs:
                loaded, found = load_document(doc)
                problems.extend(found)
                if loaded is not None:
                    manifests.append(loaded)
        except YamlError as exc:
            problems.append(exc.problem)
    seen: dict[str, LoadedManifest] = {}
    for m in manifests:
        if m.name in seen:
            first = seen[m.name]
            problems.append(
                Problem(
                    m.file,
                    m.doc.line_of(("metadata", "name")),
                    f"duplicate manifest name {m.name!r} "
                    f"(first in {first.file}:{first.doc.line_of(('metadata', 'name'))})",
                )
            )
        seen.setdefault(m.name, m)
    if selector is not None:
        manifests = [m for m in manifests if selector.matches(m.model.metadata.labels)]
    return manifests, problems
