"""Expand manifests lazily into validated RenderedRun values.

`Renderer.prepare()` evaluates loops and matrices up front (lazily where it can: a `range` is never
materialised) and enforces `max_runs` before any run is built; `Renderer.runs()` then streams the runs,
collecting every problem, and raises ManifestError at the end if there was any.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from hatchet_manifest.errors import ManifestError, Problem
from hatchet_manifest.manifest.build import RunBuilder
from hatchet_manifest.manifest.compile import LeafError, LeafInfo, RenderProblem
from hatchet_manifest.manifest.entries import AnyEntry, Entry, Fields, ProblemLog, Skip, TemplateEntry, dup_hint, short
from hatchet_manifest.manifest.keyset import KeySet
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.prepare import EntryCompiler
from hatchet_manifest.manifest.rendered import TRIGGER_KINDS, Limits, RenderedRun
from hatchet_manifest.manifest.template import REVEAL_VAR, Environment
from hatchet_manifest.manifest.validate import SchemaRegistry, describe
from hatchet_manifest.manifest.values import Values, merge


class Rendering(Protocol):
    """What renders runs: a Renderer here, or the bounded worker process the commands use (sandbox.py)."""

    def runs(self) -> Iterator[RenderedRun]: ...


KEY_BATCH = 1024
SHARD_BLOCK = 1024  # a shard is made of blocks of consecutive items: block = ordinal // SHARD_BLOCK


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
        self.env = Environment(self.limits.max_runs, self.limits.access)
        self.schemas = SchemaRegistry(schema_dir)
        self.reveal = reveal_secrets
        self.log = ProblemLog(self.limits.max_problems)
        self.compiler = EntryCompiler(self.env, self.limits, self.log)
        self.builder = RunBuilder(self.limits, self.schemas, self.log)
        self.warnings: list[str] = []  # said on stderr by the commands; never fatal
        self._entries: list[AnyEntry] | None = None
        self.overrides: dict[str, Any] = {}  # the merged values (-f, --set, ...), once prepared
        # Told (manifest, entry index, section) as each entry starts compiling or rendering: a render worker keeps it
        # where its parent reads it if a bound stops the render (sandbox.py).
        self.on_entry: Callable[[LoadedManifest, int, str], None] | None = None

    def fresh(self) -> Renderer:
        """A new renderer of the same manifests, values and settings (nothing rendered yet)."""
        return Renderer(self.manifests, self.values, self.limits, self.schemas.schema_dir, self.reveal)

    def count(self) -> int:
        """Render and check every run, keeping none: their number. Raises ManifestError."""
        return sum(1 for _ in self.runs())

    def close(self) -> None:
        """Nothing to release in this process (a BoundedRenderer stops its worker)."""

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def problems(self) -> list[Problem]:
        return self.log.problems

    @property
    def problem_ordinals(self) -> list[int]:
        """The ordinal of the item each kept problem is about."""
        return self.log.ordinals

    @property
    def problem_count(self) -> int:
        return self.log.count

    # -- prepare ----------------------------------------------------------------------------------------------
    def prepare(self) -> int:
        """Compile every entry and size every loop; returns the number of runs. Raises ManifestError."""
        if self._entries is not None:
            return sum(e.count for e in self._entries)
        self.overrides = overrides = self.values.overrides()  # the -f files are read here, once
        entries: list[AnyEntry] = []
        for m in self.manifests:
            variables = merge(json.loads(json.dumps(m.model.vars)), overrides)
            self.compiler.check_vars(m)
            for index, entry in enumerate(m.model.runs):
                if self.on_entry is not None:
                    self.on_entry(m, index, "runs")
                compiled = self.compiler.compile_entry(m, index, entry, variables)
                if compiled is not None:
                    entries.append(compiled)
            for section in TRIGGER_KINDS:
                for index, trigger in enumerate(getattr(m.model, section)):
                    if self.on_entry is not None:
                        self.on_entry(m, index, section)
                    allow_past = bool(getattr(trigger, "allow_past", False))
                    compiled = self.compiler.compile_section_entry(m, section, index, variables, allow_past)
                    if compiled is not None:
                        entries.append(compiled)
        total = sum(e.count for e in entries)
        if total > self.limits.max_runs:
            self.log.add("", None, f"the manifests declare {total} runs, more than --max-runs {self.limits.max_runs}")
        elif self.log.count:  # the entries that compiled are rendered too: every problem is reported at once
            self._entries = entries
            for _ in self.runs():
                pass
        self.log.raise_if_any()
        self._entries = entries
        return total

    # -- runs -------------------------------------------------------------------------------------------------
    def runs(self) -> Iterator[RenderedRun]:
        """Stream every valid run, keys checked unique; raises ManifestError after the last one if any run had
        problems. (A shard of the stream, keys unchecked: `stream`.)"""
        keys = KeySet()
        batch: list[tuple[AnyEntry, RenderedRun]] = []
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
        self.log.raise_if_any()

    def stream(self, shard: tuple[int, int] | None = None) -> Iterator[tuple[int, int, RenderedRun]]:
        """(entry number, ordinal, run) for the valid runs, keys not checked unique; problems are collected
        (`problems`, `problem_ordinals`, `problem_count`), not raised.

        `shard=(k, n)`: only the items (loop items, matrix combinations, template items, counted in order from 0:
        their ordinals) of blocks `ordinal // SHARD_BLOCK` equal to k modulo n; the others are skipped without
        being evaluated. The caller merges the shards and checks the keys."""
        self.prepare()
        assert self._entries is not None
        start = 0
        on_entry = self.on_entry
        for entry_no, entry in enumerate(self._entries):
            if on_entry is not None:
                on_entry(entry.manifest, entry.index, entry.section)
            if isinstance(entry, TemplateEntry):
                produced = self._template_runs(entry, start, shard)
            else:
                produced = self._entry_runs(entry, start, shard)
            for ordinal, run in produced:
                yield entry_no, ordinal, run
            start += entry.count

    def entry(self, entry_no: int) -> AnyEntry:
        assert self._entries is not None
        return self._entries[entry_no]

    def entries(self) -> list[AnyEntry]:
        """The compiled entries (after prepare), in stream order; each has `manifest`, `index` and `count`."""
        self.prepare()
        assert self._entries is not None
        return list(self._entries)

    def _unique(self, keys: KeySet, batch: list[tuple[AnyEntry, RenderedRun]]) -> Iterator[RenderedRun]:
        """The runs of a batch whose keys were not seen before (duplicates become problems)."""
        dups = set(keys.add_batch([run.key for _, run in batch]))
        for i, (entry, run) in enumerate(batch):
            if i in dups:
                f = entry.fields
                what = "a cron's name is its identity: names must be unique" if entry.section == "crons" else ""
                message = f"duplicate key {run.key!r}" + (f" ({what})" if what else dup_hint(entry))
                self.log.at(entry, run.where, f.key, message, Fields.loc(f.key))
            else:
                yield run

    def _entry_runs(
        self, entry: Entry, ordinal: int, shard: tuple[int, int] | None
    ) -> Iterator[tuple[int, RenderedRun]]:
        program = entry.program
        ctx = program.context(entry.variables)
        reveal_ctx = (
            program.context({**entry.variables, REVEAL_VAR: True}) if self.reveal and entry.uses_secret else None
        )
        as_name = entry.as_name
        log, build, with_secrets = self.log, self.builder.build, self.builder.with_secrets
        for combo, items in entry.expansions:
            base = {**combo, "matrix": combo} if combo else {}
            label_base = ", ".join(f"{k}={short(v)}" for k, v in combo.items())
            sequence: Iterable[Any] = items if items is not None else (None,)
            for position, item in enumerate(sequence):
                if shard is not None and (ordinal // SHARD_BLOCK) % shard[1] != shard[0]:
                    ordinal += 1
                    continue
                log.ordinal = ordinal
                ordinal += 1
                local = dict(base)
                if items is not None:
                    local[as_name] = item
                    local["index"] = position
                    label = f"{as_name}={short(item)}" + (f", {label_base}" if label_base else "")
                else:
                    label = label_base
                where = f"{entry.section}[{entry.index}] ({label})" if label else f"{entry.section}[{entry.index}]"
                try:
                    values = program.run(ctx, local)
                    if entry.when is not None:
                        condition = entry.when.build(values)
                        if condition is False:
                            continue
                        if condition is not True:
                            raise LeafError(when_info(entry), RenderProblem(when_problem(condition)))
                    run = build(entry, values, where)
                    if reveal_ctx is not None:
                        secret_values = program.run(reveal_ctx, dict(local))
                        run = with_secrets(entry, run, secret_values, where)
                except LeafError as exc:
                    self.compiler.leaf_problem(entry.manifest, where, exc)
                    continue
                except Skip:
                    continue
                yield log.ordinal, run

    def _template_runs(
        self, entry: TemplateEntry, ordinal: int, shard: tuple[int, int] | None
    ) -> Iterator[tuple[int, RenderedRun]]:
        for n, (item, k) in enumerate(entry.items, ordinal):
            if shard is not None and (n // SHARD_BLOCK) % shard[1] != shard[0]:
                continue
            self.log.ordinal = n
            try:
                yield n, self.builder.template_run(entry, item, k)
            except Skip:
                continue


def render(
    manifests: list[LoadedManifest],
    values: Values | None = None,
    limits: Limits | None = None,
    schema_dir: Path | None = Path("schemas/inputs"),
) -> Iterator[RenderedRun]:
    """Stream the runs of `manifests`; raises ManifestError at the end when anything was invalid."""
    return Renderer(manifests, values, limits, schema_dir).runs()


def when_info(entry: Entry) -> LeafInfo:
    return LeafInfo("when", entry.manifest.doc.line_of((entry.section, entry.index, "when")), "")


def when_problem(value: object) -> str:
    return f"must be true or false, got {describe(value)} (compare explicitly, e.g. `{{{{ x == 1 }}}}`)"


def raise_with(renderer: Rendering, problems: list[Problem]) -> None:
    """Raise ManifestError with `problems` (of manifests that did not load) and every problem of rendering the
    manifests that did: a structural error in one file does not hide template errors in the others."""
    try:
        for _ in renderer.runs():
            pass
    except ManifestError as exc:
        raise ManifestError([*problems, *exc.problems]) from None
    raise ManifestError(problems)
