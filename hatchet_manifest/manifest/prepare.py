"""Compiling run entries: each structured entry becomes one sandboxed program with its loops sized; each
`template:` block is rendered and parsed into items. Nothing per run is evaluated here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from hatchet_manifest.manifest.compile import (
    Compiler,
    LeafError,
    RenderProblem,
    calls_secret,
    is_template,
    template_lineno,
)
from hatchet_manifest.manifest.entries import (
    SECTION_FIELDS,
    TRIGGER_FIELDS,
    Entry,
    Fields,
    ProblemLog,
    TemplateEntry,
    info,
)
from hatchet_manifest.manifest.expand import ExpandError, loop_items, matrix_combos
from hatchet_manifest.manifest.loader import LoadedManifest, pydantic_problems
from hatchet_manifest.manifest.model import RunEntry, TemplateItem
from hatchet_manifest.manifest.rendered import Limits
from hatchet_manifest.manifest.template import Environment, render_capped
from hatchet_manifest.manifest.validate import describe
from hatchet_manifest.manifest.yamlsafe import Document, YamlError, parse_documents

_SECRET_IN_TEMPLATE = (
    "secret() cannot be used in a template: block: its output is parsed as YAML text, where a secret's value "
    "could not be kept apart from the text around it (and could change what is parsed); use a structured run "
    "entry with secret() in input or options.additional_metadata"
)
_SECRET_IN_VARS = (
    "secret() cannot be used in vars: vars are data, never rendered, so this text would be sent as is; call "
    "secret() in input or options.additional_metadata"
)


_ABSENT = object()


class EntryCompiler:
    """Compiles the run entries of manifests, recording problems in `log`."""

    def __init__(self, env: Environment, limits: Limits, log: ProblemLog) -> None:
        self.env = env
        self.limits = limits
        self.log = log

    def compile_entry(
        self, m: LoadedManifest, index: int, entry: RunEntry, variables: dict[str, Any]
    ) -> Entry | TemplateEntry | None:
        """A run entry (a structured one, or a `template:` block)."""
        if entry.template is not None:
            return self.template_entry(m, index, entry.template, variables)
        return self.compile_section_entry(m, "runs", index, variables)

    def compile_section_entry(
        self, m: LoadedManifest, section: str, index: int, variables: dict[str, Any], allow_past: bool = False
    ) -> Entry | None:
        """A structured entry of `section` (runs, crons, schedules, events): its leaves compiled into one
        program, its loops sized."""
        doc = m.doc
        where = f"{section}[{index}]"
        line = doc.line_of((section, index))
        raw: dict[str, Any] = doc.data[section][index]
        fields = SECTION_FIELDS[section]
        compiler = Compiler(self.env, lambda loc: doc.line_of((section, index, *loc)))

        def leaf(path: str, default: Any = None) -> Any:
            value: Any = raw
            for part in path.split("."):
                value = value.get(part, _ABSENT) if isinstance(value, dict) else _ABSENT
                if value is _ABSENT:
                    return default
            return value

        try:
            workflow = compiler.tree(raw[fields.workflow], Fields.loc(fields.workflow), fields.workflow)
            key_raw = leaf(fields.key, _ABSENT)
            key = compiler.tree(key_raw, Fields.loc(fields.key), fields.key) if key_raw is not _ABSENT else None
            input_tree = compiler.tree(leaf(fields.input, {}), Fields.loc(fields.input), fields.input)
            metadata = compiler.tree(leaf(fields.metadata, {}), Fields.loc(fields.metadata), fields.metadata)
            priority = compiler.tree(leaf(fields.priority), Fields.loc(fields.priority), fields.priority)
            when = compiler.tree(raw["when"], ("when",), "when") if "when" in raw else None
            extra = {
                name: compiler.tree(raw[name], (name,), name) for name in TRIGGER_FIELDS.get(section, ()) if name in raw
            }
            program = compiler.finish()
        except LeafError as exc:
            self.leaf_problem(m, where, exc)
            return None
        compiled = Entry(
            m,
            index,
            line,
            str(raw.get("as", "item")),
            program,
            workflow,
            key,
            input_tree,
            metadata,
            priority,
            when,
            raw.get("input_schema") if section == "runs" else None,
            "secret" in compiler.names,
            variables,
            section=section,
            extra=extra,
            allow_past=allow_past,
        )
        try:
            self._expand(compiled, raw)
        except LeafError as exc:
            self.leaf_problem(m, where, exc)
            return None
        return compiled

    def leaf_problem(self, m: LoadedManifest, where: str, exc: LeafError) -> None:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause)
        kind = type(cause).__name__
        if kind in (
            "UndefinedError",
            "TemplateSyntaxError",
            "SecurityError",
            "TemplateFunctionError",
            "RenderProblem",
            "SecretUseError",
        ):
            text = message
        elif kind == "RecursionError":  # Python's text says where the limit was hit, which varies: not shown
            text = "RecursionError: maximum recursion depth exceeded (a macro calling itself without end?)"
        else:
            text = f"{kind}: {message}"
        self.log.add(m.file, exc.leaf.line, text, where, exc.leaf.path)

    def check_vars(self, m: LoadedManifest) -> None:
        """Once per manifest, before its entries: secret() in `vars` is refused."""
        self._secrets_in_vars(m)

    def _secrets_in_vars(self, m: LoadedManifest) -> None:
        """secret() in `vars` would never be called: vars are data, not rendered (their text would be sent)."""
        stack: list[tuple[tuple[str | int, ...], Any]] = [(("vars",), m.model.vars)]
        while stack:
            loc, value = stack.pop()
            if isinstance(value, dict):
                stack.extend(reversed([((*loc, k), v) for k, v in value.items()]))  # in document order
            elif isinstance(value, list):
                stack.extend(reversed([((*loc, i), v) for i, v in enumerate(value)]))
            elif isinstance(value, str) and "secret" in value and is_template(value):
                try:
                    found = calls_secret(self.env.parse(value))
                except Exception:  # noqa: BLE001 - not a template after all: it is data, as every var is
                    found = None
                if found is not None:
                    path = ".".join(map(str, loc))
                    self.log.add(m.file, m.doc.line_of(loc), _SECRET_IN_VARS, "", path)

    def _static(self, entry: Entry, value: Any, loc: tuple[str | int, ...], path: str, local: dict[str, Any]) -> Any:
        """Evaluate a value that is not per-run (for_each, matrix) in the entry's variables."""
        doc = entry.manifest.doc
        compiler = Compiler(self.env, lambda sub: doc.line_of((entry.section, entry.index, *sub)))
        tree = compiler.tree(value, loc, path)
        program = compiler.finish()
        return tree.build(program.run(program.context(entry.variables), dict(local)))

    def _expand(self, entry: Entry, raw: dict[str, Any]) -> None:
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
            line = entry.manifest.doc.line_of((entry.section, entry.index, field))
            raise LeafError(info(exc.path, line), RenderProblem(str(exc))) from None

    def template_entry(
        self, m: LoadedManifest, index: int, source: str, variables: dict[str, Any]
    ) -> TemplateEntry | None:
        doc = m.doc
        key_line = doc.line_of(("runs", index, "template"))
        where = f"runs[{index}]"
        try:
            ast = self.env.parse(source)
            use = calls_secret(ast)
            if use is not None:
                self.log.add(m.file, key_line + use.lineno, _SECRET_IN_TEMPLATE, where, "template")
                return None
            text = render_capped(self.env.from_string(ast), variables, self.limits.max_template_bytes)
            self.env.charge(len(text))  # parsing the output as YAML costs far more than writing it
        except Exception as exc:  # noqa: BLE001 - untrusted template code: every failure becomes a located problem
            lineno = template_lineno(exc)
            line = key_line + lineno if lineno else key_line
            self.leaf_problem(m, where, LeafError(info("template", line), exc))
            return None
        label = f"{m.file} (template at line {key_line}, rendered)"
        try:
            docs = list(parse_documents(text, label))
        except YamlError as exc:
            self.log.add(m.file, key_line, f"the template's output is not valid YAML: {exc.problem}", where, "template")
            return None
        data = docs[0].data if docs else []
        if not isinstance(data, list):
            self.log.add(
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
                    self.log.add(m.file, key_line, p.message, f"{where} item[{k}]", p.path)
        if len(items) > self.limits.max_runs:
            self.log.add(
                m.file, key_line, f"the template renders more than --max-runs {self.limits.max_runs} runs", where
            )
            return None
        return TemplateEntry(m, index, key_line, items)
