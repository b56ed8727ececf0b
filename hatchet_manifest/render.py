"""Expand manifests lazily into validated RenderedRun values.

`Renderer.prepare()` evaluates loops and matrices up front (lazily where it can: a `range` is never
materialised) and enforces `max_runs` before any run is built; `Renderer.runs()` then streams the runs,
collecting every problem, and raises ManifestError at the end if there was any.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hatchet_manifest.compile import (
    Compiler,
    DuplicateKeyError,
    LeafError,
    LeafInfo,
    Program,
    RenderProblem,
    Tree,
    template_lineno,
)
from hatchet_manifest.errors import ManifestError, Problem
from hatchet_manifest.expand import ExpandError, loop_items, matrix_combos
from hatchet_manifest.keyset import KeySet
from hatchet_manifest.loader import LoadedManifest, pydantic_problems
from hatchet_manifest.model import RunEntry, TemplateItem
from hatchet_manifest.rendered import Limits, RenderedRun, canonical_json, content_digest
from hatchet_manifest.template import REVEAL_VAR, Environment, render_capped
from hatchet_manifest.validate import (
    SchemaRegistry,
    check_json,
    check_key,
    check_priority,
    check_workflow_name,
    describe,
    may_be_large,
    metadata_value,
    request_size,
    schema_errors,
    small_flat_json,
)
from hatchet_manifest.values import Values, merge
from hatchet_manifest.yamlsafe import Document, YamlError, parse_documents

KEY_BATCH = 1024
SHARD_BLOCK = 1024  # a shard is made of blocks of consecutive items: block = ordinal // SHARD_BLOCK


class _Skip(Exception):
    """The current run has problems (already recorded)."""


@dataclass
class _Entry:
    """A compiled structured run entry."""

    manifest: LoadedManifest
    index: int
    line: int
    as_name: str
    program: Program
    workflow: Tree
    key: Tree | None
    input: Tree
    metadata: Tree
    priority: Tree
    when: Tree | None
    schema_source: str | dict[str, Any] | None
    uses_secret: bool
    variables: dict[str, Any]
    expansions: list[tuple[dict[str, Any], Iterable[Any] | None]] = field(default_factory=list)
    count: int = 0


@dataclass
class _TemplateEntry:
    manifest: LoadedManifest
    index: int
    line: int
    items: list[tuple[TemplateItem, int]]

    @property
    def count(self) -> int:
        return len(self.items)


class Renderer:
    """Renders loaded manifests with values into a stream of validated runs."""

    def __init__(
        self,
        manifests: list[LoadedManifest],
        values: Values | None = None,
        limits: Limits | None = None,
        schema_dir: Path | None = Path("schemas/inputs"),
        reveal_secrets: bool = False,
    ) -> None:
        self.manifests = manifests
        self.values = values or Values()
        self.limits = limits or Limits()
        self.env = Environment(self.limits.max_runs)
        self.schemas = SchemaRegistry(schema_dir)
        self.reveal = reveal_secrets
        self.problems: list[Problem] = []
        self.warnings: list[str] = []  # said on stderr by the commands; never fatal
        self.problem_ordinals: list[int] = []  # the ordinal of the item each kept problem is about
        self.problem_count = 0
        self._ordinal = 0
        self._entries: list[_Entry | _TemplateEntry] | None = None
        self.overrides: dict[str, Any] = {}  # the merged values (-f, --set, ...), once prepared

    # -- problems ---------------------------------------------------------------------------------------------
    def _problem(self, file: str, line: int | None, message: str, where: str = "", path: str = "") -> None:
        self.problem_count += 1
        if len(self.problems) < self.limits.max_problems:
            self.problems.append(Problem(file, line, message, where, path))
            self.problem_ordinals.append(self._ordinal)

    def _raise_if_problems(self) -> None:
        if self.problem_count:
            raise ManifestError.of(self.problems, self.problem_count)

    # -- prepare ----------------------------------------------------------------------------------------------
    def prepare(self) -> int:
        """Compile every entry and size every loop; returns the number of runs. Raises ManifestError."""
        if self._entries is not None:
            return sum(e.count for e in self._entries)
        self.overrides = overrides = self.values.overrides()  # the -f files are read here, once
        entries: list[_Entry | _TemplateEntry] = []
        for m in self.manifests:
            variables = merge(json.loads(json.dumps(m.model.vars)), overrides)
            for index, entry in enumerate(m.model.runs):
                compiled = self._compile_entry(m, index, entry, variables)
                if compiled is not None:
                    entries.append(compiled)
        total = sum(e.count for e in entries)
        if total > self.limits.max_runs:
            self._problem("", None, f"the manifests declare {total} runs, more than --max-runs {self.limits.max_runs}")
        self._raise_if_problems()
        self._entries = entries
        return total

    def _compile_entry(
        self, m: LoadedManifest, index: int, entry: RunEntry, variables: dict[str, Any]
    ) -> _Entry | _TemplateEntry | None:
        doc = m.doc
        where = f"runs[{index}]"
        line = doc.line_of(("runs", index))
        raw: dict[str, Any] = doc.data["runs"][index]
        if entry.template is not None:
            return self._template_entry(m, index, entry.template, variables)
        compiler = Compiler(self.env, lambda loc: doc.line_of(("runs", index, *loc)))
        try:
            workflow = compiler.tree(raw["workflow_name"], ("workflow_name",), "workflow_name")
            key = compiler.tree(raw["key"], ("key",), "key") if "key" in raw else None
            input_tree = compiler.tree(raw.get("input", {}), ("input",), "input")
            options = raw.get("options", {})
            metadata = compiler.tree(
                options.get("additional_metadata", {}),
                ("options", "additional_metadata"),
                "options.additional_metadata",
            )
            priority = compiler.tree(options.get("priority"), ("options", "priority"), "options.priority")
            when = compiler.tree(raw["when"], ("when",), "when") if "when" in raw else None
            program = compiler.finish()
        except LeafError as exc:
            self._leaf_problem(m, where, exc)
            return None
        compiled = _Entry(
            m,
            index,
            line,
            entry.as_,
            program,
            workflow,
            key,
            input_tree,
            metadata,
            priority,
            when,
            entry.input_schema,
            "secret" in compiler.names,
            variables,
        )
        try:
            self._expand(compiled, raw)
        except LeafError as exc:
            self._leaf_problem(m, where, exc)
            return None
        return compiled

    def _leaf_problem(self, m: LoadedManifest, where: str, exc: LeafError) -> None:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause)
        kind = type(cause).__name__
        if kind in ("UndefinedError", "TemplateSyntaxError", "SecurityError", "TemplateFunctionError", "RenderProblem"):
            text = message
        else:
            text = f"{kind}: {message}"
        self._problem(m.file, exc.leaf.line, text, where, exc.leaf.path)

    def _static(self, entry: _Entry, value: Any, loc: tuple[str | int, ...], path: str, local: dict[str, Any]) -> Any:
        """Evaluate a value that is not per-run (for_each, matrix) in the entry's variables."""
        doc = entry.manifest.doc
        compiler = Compiler(self.env, lambda sub: doc.line_of(("runs", entry.index, *sub)))
        tree = compiler.tree(value, loc, path)
        program = compiler.finish()
        return tree.build(program.run(program.context(entry.variables), dict(local)))

    def _expand(self, entry: _Entry, raw: dict[str, Any]) -> None:
        try:
            combos = (
                matrix_combos(self._static(entry, raw["matrix"], ("matrix",), "matrix", {}), self.limits.max_runs)
                if "matrix" in raw
                else [{}]
            )
            for combo in combos:
                items: Iterable[Any] | None = None
                n = 1
                if "for_each" in raw:
                    local = {**combo, "matrix": combo}
                    value = self._static(entry, raw["for_each"], ("for_each",), "for_each", local)
                    items, n = loop_items(value, self.limits.max_runs)
                entry.expansions.append((combo, items))
                entry.count += n
        except ExpandError as exc:
            field = exc.path.split(".")[0]
            line = entry.manifest.doc.line_of(("runs", entry.index, field))
            raise LeafError(_info(exc.path, line), RenderProblem(str(exc))) from None

    def _template_entry(
        self, m: LoadedManifest, index: int, source: str, variables: dict[str, Any]
    ) -> _TemplateEntry | None:
        doc = m.doc
        key_line = doc.line_of(("runs", index, "template"))
        where = f"runs[{index}]"
        try:
            text = render_capped(self.env.from_string(source), variables, self.limits.max_template_bytes)
        except Exception as exc:  # noqa: BLE001 - untrusted template code: every failure becomes a located problem
            lineno = template_lineno(exc)
            line = key_line + lineno if lineno else key_line
            self._leaf_problem(m, where, LeafError(_info("template", line), exc))
            return None
        label = f"{m.file} (template at line {key_line}, rendered)"
        try:
            docs = list(parse_documents(text, label))
        except YamlError as exc:
            self._problem(
                m.file, key_line, f"the template's output is not valid YAML: {exc.problem}", where, "template"
            )
            return None
        data = docs[0].data if docs else []
        if not isinstance(data, list):
            self._problem(
                m.file, key_line, f"the template must render a YAML list, got {describe(data)}", where, "template"
            )
            return None
        items = []
        for k, item in enumerate(data):
            sub = Document(m.file, key_line, item)
            try:
                items.append((TemplateItem.model_validate(item), k))
            except ValidationError as exc:
                for p in pydantic_problems(exc, sub):
                    self._problem(m.file, key_line, p.message, f"{where} item[{k}]", p.path)
        if len(items) > self.limits.max_runs:
            self._problem(
                m.file, key_line, f"the template renders more than --max-runs {self.limits.max_runs} runs", where
            )
            return None
        return _TemplateEntry(m, index, key_line, items)

    # -- runs -------------------------------------------------------------------------------------------------
    def runs(self) -> Iterator[RenderedRun]:
        """Stream every valid run, keys checked unique; raises ManifestError after the last one if any run had
        problems. (A shard of the stream, keys unchecked: `stream`.)"""
        keys = KeySet()
        batch: list[tuple[_Entry | _TemplateEntry, RenderedRun]] = []
        try:
            for entry_no, _, run in self.stream():
                batch.append((self.entry(entry_no), run))
                if len(batch) == KEY_BATCH:
                    yield from self._unique(keys, batch)
                    batch.clear()
            yield from self._unique(keys, batch)
        finally:
            keys.close()
        for name in sorted(self.env.missing_secrets):
            self.warnings.append(f"secret {name} is not set: shown as ***; apply will need it")
        self._raise_if_problems()

    def stream(self, shard: tuple[int, int] | None = None) -> Iterator[tuple[int, int, RenderedRun]]:
        """(entry number, ordinal, run) for the valid runs, keys not checked unique; problems are collected
        (`problems`, `problem_ordinals`, `problem_count`), not raised.

        `shard=(k, n)`: only the items (loop items, matrix combinations, template items, counted in order from 0:
        their ordinals) of blocks `ordinal // SHARD_BLOCK` equal to k modulo n; the others are skipped without
        being evaluated. The caller merges the shards and checks the keys."""
        self.prepare()
        assert self._entries is not None
        start = 0
        for entry_no, entry in enumerate(self._entries):
            if isinstance(entry, _TemplateEntry):
                produced = self._template_runs(entry, start, shard)
            else:
                produced = self._entry_runs(entry, start, shard)
            for ordinal, run in produced:
                yield entry_no, ordinal, run
            start += entry.count

    def entry(self, entry_no: int) -> _Entry | _TemplateEntry:
        assert self._entries is not None
        return self._entries[entry_no]

    def entries(self) -> list[_Entry | _TemplateEntry]:
        """The compiled entries (after prepare), in stream order; each has `manifest`, `index` and `count`."""
        self.prepare()
        assert self._entries is not None
        return list(self._entries)

    def _unique(self, keys: KeySet, batch: list[tuple[_Entry | _TemplateEntry, RenderedRun]]) -> Iterator[RenderedRun]:
        """The runs of a batch whose keys were not seen before (duplicates become problems)."""
        dups = set(keys.add_batch([run.key for _, run in batch]))
        for i, (entry, run) in enumerate(batch):
            if i in dups:
                self._fail(entry, run.where, "key", f"duplicate key {run.key!r}" + _dup_hint(entry), ("key",))
            else:
                yield run

    def _entry_runs(
        self, entry: _Entry, ordinal: int, shard: tuple[int, int] | None
    ) -> Iterator[tuple[int, RenderedRun]]:
        program = entry.program
        ctx = program.context(entry.variables)
        reveal_ctx = (
            program.context({**entry.variables, REVEAL_VAR: True}) if self.reveal and entry.uses_secret else None
        )
        as_name = entry.as_name
        for combo, items in entry.expansions:
            base = {**combo, "matrix": combo} if combo else {}
            label_base = ", ".join(f"{k}={_short(v)}" for k, v in combo.items())
            sequence: Iterable[Any] = items if items is not None else (None,)
            for position, item in enumerate(sequence):
                if shard is not None and (ordinal // SHARD_BLOCK) % shard[1] != shard[0]:
                    ordinal += 1
                    continue
                self._ordinal = ordinal
                ordinal += 1
                local = dict(base)
                if items is not None:
                    local[as_name] = item
                    local["index"] = position
                    label = f"{as_name}={_short(item)}" + (f", {label_base}" if label_base else "")
                else:
                    label = label_base
                where = f"runs[{entry.index}] ({label})" if label else f"runs[{entry.index}]"
                try:
                    values = program.run(ctx, local)
                    if entry.when is not None and not entry.when.build(values):
                        continue
                    run = self._build(entry, values, where)
                    if reveal_ctx is not None:
                        secret_values = program.run(reveal_ctx, dict(local))
                        run = self._with_secrets(entry, run, secret_values, where)
                except LeafError as exc:
                    self._leaf_problem(entry.manifest, where, exc)
                    continue
                except _Skip:
                    continue
                yield self._ordinal, run

    def _fail(
        self, entry: _Entry | _TemplateEntry, where: str, path: str, message: str, loc: tuple[str | int, ...] = ()
    ) -> None:
        line = entry.manifest.doc.line_of(("runs", entry.index, *loc)) if loc else entry.line
        self._problem(entry.manifest.file, line, message, where, path)

    def _build(self, entry: _Entry, values: list[Any], where: str) -> RenderedRun:
        bad = False
        workflow = entry.workflow.build(values)
        error = check_workflow_name(workflow)
        if error:
            self._fail(entry, where, "workflow_name", error, ("workflow_name",))
            bad = True
        try:
            data = entry.input.build(values)
            raw_metadata = entry.metadata.build(values)
        except DuplicateKeyError as exc:
            self._fail(entry, where, exc.path, "two keys render to the same name", tuple(exc.path.split(".")))
            raise _Skip() from None
        if not isinstance(data, dict):
            self._fail(entry, where, "input", f"must be an object, got {describe(data)}", ("input",))
            raise _Skip()
        small = small_flat_json(data, self.limits.max_request_bytes)
        if not small:
            for path, message in check_json(data, "input"):
                self._fail(entry, where, path, message, ("input", *path.split(".")[1:2]))
                bad = True
        metadata = self._metadata(entry, raw_metadata, where)
        priority, error = check_priority(entry.priority.build(values))
        if error:
            self._fail(entry, where, "options.priority", error, ("options", "priority"))
            bad = True
        if bad or metadata is None:
            raise _Skip()
        key = self._key(entry, values, workflow, data, metadata, where)
        self._check_size_and_schema(entry, where, workflow, data, metadata, small)
        return RenderedRun(
            key,
            workflow,
            data,
            metadata,
            priority,
            entry.manifest.name,
            entry.manifest.file,
            entry.line,
            where,
            None,  # secret_input, secret_metadata: see _with_secrets
            None,
            entry.uses_secret,  # positional: a keyword costs a tenth of building the run
        )

    def _metadata(self, entry: _Entry | _TemplateEntry, raw: Any, where: str) -> dict[str, str] | None:
        if not isinstance(raw, dict):
            self._fail(entry, where, "options.additional_metadata", f"must be an object, got {describe(raw)}")
            return None
        out: dict[str, str] = {}
        for k, v in raw.items():  # fast path: string keys, string or int values
            if type(k) is not str or "\x00" in k:
                break
            if type(v) is str and "\x00" not in v:
                out[k] = v
            elif type(v) is int:
                out[k] = str(v)
            else:
                break
        else:
            return out
        out.clear()
        ok = True
        for k, v in raw.items():
            text = metadata_value(v)
            key_text = metadata_value(k)
            if text is None or key_text is None or "\x00" in text or "\x00" in key_text:
                shown = describe(v) if text is None else "a string with a NUL character"
                self._fail(
                    entry,
                    where,
                    f"options.additional_metadata.{k}",
                    f"metadata values must be strings, numbers or booleans, got {shown}",
                    ("options", "additional_metadata", k) if isinstance(entry, _Entry) else (),
                )
                ok = False
                continue
            out[key_text] = text
        return out if ok else None

    def _key(
        self,
        entry: _Entry,
        values: list[Any],
        workflow: str,
        data: dict[str, Any],
        metadata: dict[str, str],
        where: str,
    ) -> str:
        if entry.key is None:
            return _default_key(entry, workflow, data, metadata)
        key, error = check_key(entry.key.build(values))
        if key is None:
            self._fail(entry, where, "key", str(error), ("key",))
            raise _Skip()
        return key

    def _check_size_and_schema(
        self,
        entry: _Entry | _TemplateEntry,
        where: str,
        workflow: str,
        data: dict[str, Any],
        metadata: dict[str, str],
        small: bool = False,
    ) -> None:
        if not small and may_be_large(data, self.limits.max_request_bytes):
            size = request_size(workflow, canonical_json(data), canonical_json(metadata))  # as sent: compact
            if size > self.limits.max_request_bytes:
                self._fail(
                    entry,
                    where,
                    "input",
                    f"the run's request is {size} bytes, over the {self.limits.max_request_bytes}-byte limit",
                )
                raise _Skip()
        try:
            source = entry.schema_source if isinstance(entry, _Entry) else None
            validator = (
                self.schemas.for_source(source, entry.manifest.base_dir)
                if source is not None
                else self.schemas.for_workflow(workflow)
            )
        except ValueError as exc:
            self._fail(entry, where, "input_schema", str(exc), ("input_schema",))
            raise _Skip() from None
        if validator is not None:
            errors = list(schema_errors(validator, data))
            for path, message in errors:
                self._fail(entry, where, path, message, ("input", *path.split(".")[1:2]))
            if errors:
                raise _Skip()

    def _with_secrets(self, entry: _Entry, run: RenderedRun, values: list[Any], where: str) -> RenderedRun:
        data = entry.input.build(values)
        metadata = self._metadata(entry, entry.metadata.build(values), where)
        if metadata is None:
            raise _Skip()
        return dataclasses.replace(
            run,
            secret_input=data if data != run.input else None,
            secret_metadata=metadata if metadata != run.additional_metadata else None,
        )

    def _template_runs(
        self, entry: _TemplateEntry, ordinal: int, shard: tuple[int, int] | None
    ) -> Iterator[tuple[int, RenderedRun]]:
        for n, (item, k) in enumerate(entry.items, ordinal):
            if shard is not None and (n // SHARD_BLOCK) % shard[1] != shard[0]:
                continue
            self._ordinal = n
            where = f"runs[{entry.index}] item[{k}]"
            bad = False
            for path, message in check_json(item.input, "input"):
                self._fail(entry, where, path, message)
                bad = True
            metadata = self._metadata(entry, item.options.additional_metadata, where)
            priority, error = check_priority(item.options.priority)
            if error:
                self._fail(entry, where, "options.priority", error)
                bad = True
            error = check_workflow_name(item.workflow_name)
            if error:
                self._fail(entry, where, "workflow_name", error)
                bad = True
            key: str | None = None
            if item.key is not None:
                key, error = check_key(item.key)
                if error:
                    self._fail(entry, where, "key", error)
                    bad = True
            if bad or metadata is None:
                continue
            key = key or _default_key(entry, item.workflow_name, item.input, metadata)
            try:
                self._check_size_and_schema(entry, where, item.workflow_name, item.input, metadata)
            except _Skip:
                continue
            yield (
                n,
                RenderedRun(
                    key,
                    item.workflow_name,
                    item.input,
                    metadata,
                    priority,
                    entry.manifest.name,
                    entry.manifest.file,
                    entry.line,
                    where,
                ),
            )


def _default_key(entry: _Entry | _TemplateEntry, workflow: str, data: dict[str, Any], metadata: dict[str, str]) -> str:
    """`<manifest>/<entry>/<content digest>`: the key of a run entry that names none."""
    return f"{entry.manifest.name}/{entry.index}/{content_digest(workflow, data, metadata)[:12]}"


def _info(path: str, line: int) -> LeafInfo:
    return LeafInfo(path, line, "")


def _short(value: Any) -> str:
    t = type(value)
    text = str(value) if t is int or t is str else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _dup_hint(entry: _Entry | _TemplateEntry) -> str:
    if isinstance(entry, _Entry) and entry.key is None:
        return " (identical runs get the same default key: give the entry a `key:` that tells them apart)"
    return ""


def render(
    manifests: list[LoadedManifest],
    values: Values | None = None,
    limits: Limits | None = None,
    schema_dir: Path | None = Path("schemas/inputs"),
) -> Iterator[RenderedRun]:
    """Stream the runs of `manifests`; raises ManifestError at the end when anything was invalid."""
    return Renderer(manifests, values, limits, schema_dir).runs()
