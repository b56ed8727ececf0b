"""Compile a run entry's template leaves into one sandboxed Jinja function and a tree to assemble values.

A string leaf that is exactly one expression (`"{{ i }}"`) keeps the expression's native type; a leaf that
mixes text and expressions is a string; a leaf with `{% %}` blocks is rendered as a string template. All
expression leaves of an entry are evaluated by one compiled Jinja function per run, which is what makes
rendering fast: one call per run instead of one template render per leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Template, nodes
from jinja2.runtime import Context

from hatchet_manifest.manifest.opaque import WHY, SecretUseError
from hatchet_manifest.manifest.template import MAX_VALUE_LEN, Environment, render_capped

# Where secret() may appear: values inside `input` and `options.additional_metadata` (a trigger's `input` or
# `payload` and `additional_metadata`), which are sent (and previewed masked). Everywhere else its value would
# decide something or be shown (see `secret_refusal`).
_SECRET_VALUES = ("input.", "input[", "options.additional_metadata.", "payload.", "payload[", "additional_metadata.")
_SECRET_FIELDS = {
    "workflow_name": "workflow_name: the preview would name another workflow than the apply",
    "key": "a key: a run's key is its identity, shown in every preview, plan and ledger",
    "when": "a condition (when): " + WHY,
    "options.priority": "options.priority: " + WHY,
    "priority": "priority: " + WHY,
    "name": "a cron's name: it is its identity, shown in every plan and ledger",
    "expression": "a cron's expression: it is shown in every plan",
    "enabled": "enabled: " + WHY,
    "trigger_at": "a schedule's time: it is shown in every plan",
    "event_key": "an event's key: it is shown in every plan",
    "scope": "an event's scope: it is shown in every plan",
    "for_each": "a loop (for_each): " + WHY,
    "matrix": "a matrix: " + WHY,
}


def calls_secret(ast: nodes.Node) -> nodes.Name | None:
    """The first use of the `secret` helper in a parsed template (every use of a global is a Name node: vars and
    values are data, so a secret can reach a template only through it)."""
    for name in ast.find_all(nodes.Name):
        if name.name == "secret" and name.ctx == "load":
            return name
    return None


def secret_refusal(path: str, is_key: bool) -> str | None:
    """Why secret() may not be used in the leaf at `path` (a mapping key when `is_key`), or None."""
    if is_key:
        return "secret() cannot be used in a mapping's key: keys are shown in every preview"
    if path.startswith(_SECRET_VALUES):
        return None
    field = path.split("[")[0] if path.startswith(("for_each", "matrix")) else path
    for prefix, why in _SECRET_FIELDS.items():
        if field == prefix or field.startswith(prefix + "."):
            return f"secret() cannot be used in {why}; a secret can only be a value in input or metadata"
    return f"secret() cannot be used in {path}; a secret can only be a value in input or metadata"


class Tree:
    """A value with template slots; `build(values)` assembles one run's value."""

    def build(self, values: list[Any]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Const(Tree):
    value: Any

    def build(self, values: list[Any]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class Slot(Tree):
    index: int

    def build(self, values: list[Any]) -> Any:
        return values[self.index]


class DuplicateKeyError(Exception):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(path)


@dataclass(frozen=True, slots=True)
class DictT(Tree):
    items: tuple[tuple[Tree, Tree], ...]
    path: str

    def build(self, values: list[Any]) -> Any:
        out = {k.build(values): v.build(values) for k, v in self.items}
        if len(out) != len(self.items):
            raise DuplicateKeyError(self.path)
        return out


@dataclass(frozen=True, slots=True)
class ListT(Tree):
    items: tuple[Tree, ...]

    def build(self, values: list[Any]) -> Any:
        return [x.build(values) for x in self.items]


@dataclass(frozen=True)
class LeafInfo:
    """Where a template leaf is, for error messages."""

    path: str
    line: int
    source: str


class RenderProblem(Exception):
    """A value is not what the manifest needs; the message is shown as is."""


def template_lineno(exc: BaseException) -> int | None:
    """The template line a Jinja error happened on (syntax errors carry it; runtime errors in the traceback)."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


class LeafError(Exception):
    """Evaluating one leaf failed."""

    def __init__(self, leaf: LeafInfo, cause: BaseException) -> None:
        if isinstance(cause, MemoryError):  # not a problem of the leaf: the render's memory ran out (sandbox.py)
            raise cause
        self.leaf = leaf
        self.cause = cause
        super().__init__(f"{leaf.path}: {cause}")


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


MAX_EXPRESSION_DEPTH = 200  # Jinja's and Python's compilers recurse once a level: well under the stack's limit


def too_deep(ast: nodes.Node) -> str | None:
    """Why an expression cannot be compiled for nesting too deep (`1+1+...` five thousand times), or None."""
    stack: list[tuple[nodes.Node, int]] = [(ast, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            return f"the expression nests deeper than {MAX_EXPRESSION_DEPTH} levels"
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return None


def unknown_names(env: Environment, ast: nodes.Node) -> str | None:
    """Why a template cannot compile for naming a filter or test that does not exist (found before Jinja's
    code generator does, so that the error names the leaf), or None."""
    for node in ast.find_all(nodes.Filter):
        if node.name not in env.filters:
            return f"no filter named {node.name!r}"
    for test in ast.find_all(nodes.Test):
        if test.name not in env.tests:
            return f"no test named {test.name!r}"
    return None


@dataclass
class Compiler:
    """Collects the leaves of one run entry (or of one static value) into slots."""

    env: Environment
    line_of: Callable[[tuple[str | int, ...]], int]
    exprs: list[nodes.Expr] = field(default_factory=list)
    expr_leaves: list[LeafInfo] = field(default_factory=list)
    blocks: list[tuple[Template, LeafInfo]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def tree(self, value: Any, loc: tuple[str | int, ...], path: str, is_key: bool = False) -> Tree:
        if isinstance(value, str):
            return self.leaf(value, loc, path, is_key) if is_template(value) else Const(value)
        if isinstance(value, dict):
            items = tuple(
                (
                    self.tree(k, (*loc, k), f"{path}.{k}" if path else k, is_key=True),
                    self.tree(v, (*loc, k), _join(path, k)),
                )
                for k, v in value.items()
            )
            if all(isinstance(k, Const) and isinstance(v, Const) for k, v in items):
                return Const(value)
            return DictT(items, path)
        if isinstance(value, list):
            subtrees = tuple(self.tree(v, (*loc, i), f"{path}[{i}]") for i, v in enumerate(value))
            if all(isinstance(t, Const) for t in subtrees):
                return Const(value)
            return ListT(subtrees)
        return Const(value)

    def leaf(self, source: str, loc: tuple[str | int, ...], path: str, is_key: bool = False) -> Tree:
        info = LeafInfo(path, self.line_of(loc), source)
        try:
            ast = self.env.parse(source)
        except Exception as exc:  # noqa: BLE001 - TemplateSyntaxError and friends, reported with the leaf's line
            raise LeafError(info, exc) from None
        unknown = too_deep(ast) or unknown_names(self.env, ast)  # depth first: the other walks recurse
        if unknown is not None:
            raise LeafError(info, RenderProblem(unknown))
        if calls_secret(ast) is not None:
            refusal = secret_refusal(path, is_key)
            if refusal is not None:
                raise LeafError(info, SecretUseError(refusal))
        self.names.update(n.name for n in ast.find_all(nodes.Name))
        body = ast.body
        if len(body) == 1 and isinstance(body[0], nodes.Output):
            parts = body[0].nodes
            if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
                expr: nodes.Expr = parts[0]
            else:
                expr = nodes.Concat(
                    [nodes.Const(p.data, lineno=p.lineno) if isinstance(p, nodes.TemplateData) else p for p in parts],
                    lineno=1,
                )
            self.exprs.append(expr)
            self.expr_leaves.append(info)
            return Slot(len(self.exprs) - 1)
        # Blocks ({% if %}, {% for %}): rendered as a string; slots numbered after the expressions (see finish).
        try:
            block = self.env.from_string(ast)
        except Exception as exc:  # noqa: BLE001 - compile-time errors of the block, reported with the leaf's line
            raise LeafError(info, exc) from None
        self.blocks.append((block, info))
        return Slot(-len(self.blocks))

    def finish(self) -> Program:
        return Program(self.env, self.exprs, self.expr_leaves, self.blocks)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class Program:
    """Evaluates every leaf of an entry for one set of loop variables."""

    def __init__(
        self,
        env: Environment,
        exprs: list[nodes.Expr],
        leaves: list[LeafInfo],
        blocks: list[tuple[Template, LeafInfo]],
    ) -> None:
        self.env = env
        self.leaves = leaves
        self.blocks = blocks
        self._exprs = exprs
        self._single: list[Template] | None = None
        target = nodes.Name("result", "store", lineno=1)
        whole = nodes.Template([nodes.Assign(target, nodes.List(list(exprs), lineno=1), lineno=1)], lineno=1)
        self._template = env.from_string(whole)

    def context(self, variables: dict[str, Any]) -> Context:
        return self._template.new_context(variables)

    def run(self, ctx: Context, local: dict[str, Any]) -> list[Any]:
        """All leaf values, expressions first then blocks (negative slots count from the end)."""
        ctx.vars = local
        env = self.env
        spent, exhausted = env.ops, env.exhausted
        try:
            for _ in self._template.root_render_func(ctx):
                pass
            values: list[Any] = ctx.vars["result"]
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - evaluate leaf by leaf to name the one that failed
            env.ops, env.exhausted = spent, exhausted  # the leaves run again: the failed pass is not charged twice
            values = self._locate(ctx, local)
        if self.blocks:
            values = list(values)
            merged = {**ctx.parent, **local}
            for template, info in reversed(self.blocks):
                try:
                    values.append(render_capped(template, merged, MAX_VALUE_LEN))
                except Exception as exc:
                    raise LeafError(info, exc) from exc
        return values

    def _locate(self, ctx: Context, local: dict[str, Any]) -> list[Any]:
        if self._single is None:
            self._single = [
                self.env.from_string(
                    nodes.Template([nodes.Assign(nodes.Name("result", "store", lineno=1), e, lineno=1)], lineno=1)
                )
                for e in self._exprs
            ]
        out = []
        for template, info in zip(self._single, self.leaves, strict=True):
            ctx.vars = dict(local)
            try:
                for _ in template.root_render_func(ctx):
                    pass
            except Exception as exc:
                raise LeafError(info, exc) from exc
            out.append(ctx.vars["result"])
        return out
