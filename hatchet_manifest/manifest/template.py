"""The sandboxed Jinja environment templates run in, its caps and its helpers.

Templates are untrusted (they arrive in pull requests): Jinja's immutable sandbox blocks attribute escapes and
mutation of shared values, there is no loader (no `include`/`import` of files), `range` and the helpers are
capped, no operation builds a value longer than MAX_VALUE_LEN or an integer wider than 4096 bits (`caps.py`),
and `env()` and `secret()` read only the variables the operator
allows (`access.py`); `secret()` returns opaque text (`opaque.py`) that filters, tests, calls, comparisons and
lookups refuse, so that nothing rendered depends on a secret's value. Work is
capped too: every `{% for %}` item, call (a macro calling itself included), filter and test, and every value
built, counts against one budget of work units per render, OPS_PER_RUN times --max-runs (`caps.py` says what
costs what), so that nested loops or recursion cannot keep a CI job busy for hours.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Callable, Iterable, Iterator
from functools import update_wrapper
from typing import Any, cast

from jinja2 import nodes, pass_environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from hatchet_manifest import scrub
from hatchet_manifest.manifest import caps
from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.filter_caps import metered_filter, metered_test
from hatchet_manifest.manifest.opaque import MASK as MASK
from hatchet_manifest.manifest.opaque import SecretText, SecretUseError, concat
from hatchet_manifest.manifest.template_helpers import RangeHelpers, _date_add, _sha256
from hatchet_manifest.manifest.template_helpers import TemplateFunctionError as TemplateFunctionError
from hatchet_manifest.manifest.template_secrets import (
    _PASS_THROUGH,
    _WHY,
    SecretAccess,
    _env,
    _has_secret,
    _json_default,
    _passing_secrets,
    _refusing_secrets,
    _secret,
    _to_json,
)
from hatchet_manifest.manifest.template_secrets import REVEAL_VAR as REVEAL_VAR
from hatchet_manifest.manifest.template_text import _as_text, _cap_len, _finalize, _Undefined
from hatchet_manifest.manifest.template_text import checked_concat as checked_concat
from hatchet_manifest.manifest.template_text import output_text as output_text
from hatchet_manifest.manifest.template_text import render_capped as render_capped

MAX_VALUE_LEN = caps.MAX_VALUE_LEN  # longest string or list a template may build in one step (the request limit)
FOLDING_OPS = 100_000  # work units constant expressions may spend while a template compiles
OPS_PER_RUN = 100  # work units (loop items, calls, filters, values built: see caps.py) per run of --max-runs


@pass_environment
def _count_items(environment: Environment, iterable: Iterable[Any], weight: int = 1) -> Iterator[Any]:
    """Wraps the iterable of every `{% for %}` (see Environment._generate): each item costs `weight`."""
    return environment.counted(iterable, weight)


_COUNT_ITEMS = nodes.ImportedName(f"{__name__}._count_items")


class _CodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        """`x in y` and `x not in y` charge the size of y (a membership test walks it)."""
        if len(node.ops) != 1 or node.ops[0].op not in ("in", "notin"):
            super().visit_Compare(node, frame)
            return
        self.write("(not " if node.ops[0].op == "notin" else "(")
        self.write("environment.contains(")
        self.visit(node.ops[0].expr, frame)
        self.write(", ")
        self.visit(node.expr, frame)
        self.write("))")

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        self.write("environment.output_text(")  # instead of str(: keeps a secret opaque
        if finalize.src is not None:
            self.write(finalize.src)


class Environment(RangeHelpers, SecretAccess, ImmutableSandboxedEnvironment):
    """Sandboxed, strict, and capped at `max_items` loop items and `MAX_VALUE_LEN` per built value."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "-"})
    code_generator_class = _CodeGenerator
    output_text = staticmethod(output_text)

    def concat(self, parts: Iterable[Any]) -> Any:
        """Buffered output (a macro's, a `{% set %}` or `{% filter %}` block's) joined, capped at MAX_VALUE_LEN;
        a block capturing a secret stays opaque."""
        if type(parts) is not list:
            parts = list(parts)
        size = 0
        for p in parts:
            if isinstance(p, str):
                size += len(p)
        if size > MAX_VALUE_LEN:
            raise SecurityError(f"a macro or block would build a value longer than {MAX_VALUE_LEN}")
        if size >> 4:
            self.charge(size >> 4)
        return concat(parts)

    def checked_concat(self, values: tuple[Any, ...]) -> str:
        """`a ~ b` and text mixed with expressions, capped like everything else (see `checked_concat`)."""
        try:
            text = "".join([v if type(v) is str else str(v) if type(v) is int else _as_text(v) for v in values])
        except SecretUseError:  # a secret among the parts: opaque text (checked_concat caps what is not secret)
            return checked_concat(values)
        n = len(text)
        if n > 255:
            _cap_len(n, "'~'")
            self.charge(n >> 4)
        return text

    def contains(self, container: Any, item: Any) -> bool:
        """`item in container`, charged the size of the container."""
        self.charge(1 + caps.weight(container))
        return item in container

    def __init__(self, max_items: int, access: Access | None = None) -> None:
        super().__init__(undefined=_Undefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize)
        self.max_items = max_items
        self.max_ops = OPS_PER_RUN * max(max_items, 1000)
        self.ops = 0  # work units spent so far (see caps.py)
        self.exhausted = False  # the budget ran out (said once, where it happened)
        self._macro_costs: dict[types.CodeType, int] = {}
        self._macro_depth = 0  # macro calls in progress
        self._folding = False  # compiling: constant expressions are evaluated under a budget of their own
        self.missing_secrets: set[str] = set()  # secret() names a preview found unset
        self.access = access or Access()  # what env() and secret() may read
        for name in self.access.secret_names():  # masked in what this process writes, even read another way
            scrub.register(os.environ.get(name, ""))
        self.globals.pop("lipsum", None)
        self.globals.update(
            range=self._range,
            env=_env,
            secret=_secret,
            date_range=self._date_range,
            datetime_range=self._datetime_range,
            month_range=self._month_range,
        )
        self.filters.update(
            to_json=_to_json,
            from_json=json.loads,
            sha256=_sha256,
            date_add=_date_add,
        )
        for name, func in list(self.filters.items()):  # every filter and test is charged and capped (caps.py)
            self.filters[name] = metered_filter(self, name, func)
        for name, test in list(self.tests.items()):
            self.tests[name] = metered_test(self, name, cast(Callable[..., Any], test))
        self.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _json_default}  # tojson
        self._guard_secrets()

    def _guard_secrets(self) -> None:
        """Filters and tests refuse a secret (but `default` and `string`, which pass it through unchanged)."""
        for name, func in list(self.filters.items()):
            if name not in _PASS_THROUGH:
                self.filters[name] = _refusing_secrets(func, f"given to the {name} filter")
        self.filters["string"] = _passing_secrets(self.filters["string"])
        for name, test in list(self.tests.items()):
            self.tests[name] = _refusing_secrets(cast(Callable[..., Any], test), f"tested ({name})")

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is SecretText:
            raise SecretUseError(f"a secret() value has no attributes ({attribute!r}): {_WHY}")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is SecretText or type(argument) is SecretText:
            raise SecretUseError(f"a secret() value cannot be indexed, sliced or used as a key: {_WHY}")
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        caps.binop_check(self, operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Calls count against the budget (a macro by its size and how deep macro calls nest, a method by its
        value's); method calls that could build huge values are capped before they run, and what calls return is
        charged (caps.py)."""
        if type(__obj) is Macro:
            code = __obj._func.__code__
            cost = __self._macro_costs.get(code)
            if cost is None:  # by the size of its compiled body (co_code is built anew on each access: cached)
                cost = __self._macro_costs[code] = caps.MACRO_OPS + (len(code.co_code) >> 5)
            depth = __self._macro_depth
            __self.ops += cost + cost * depth // 4  # deep calls (recursion) cost more: each level adds a quarter
            if __self.ops > __self.max_ops:
                __self._over_budget()
            if _has_secret(args, kwargs):
                raise SecretUseError(f"a secret() value cannot be {_callee(__obj)}: {_WHY}")
            __self._macro_depth = depth + 1
            try:
                return super().call(__context, __obj, *args, **kwargs)
            finally:
                __self._macro_depth = depth
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "") if owner is not None else None
        if name is None:
            __self.charge(caps.CALL_OPS)
        if _has_secret(args, kwargs):
            raise SecretUseError(f"a secret() value cannot be {_callee(__obj)}: {_WHY}")
        if name is not None:
            args = caps.method_args(__self, owner, name, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if name is not None:
            caps.check_result(__self, result, f"{type(owner).__name__}.{name}()")
        else:
            caps.check_result(__self, result, f"{getattr(__obj, '__name__', 'the call')}()")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map` in the sandbox (as Jinja's), with every field capped (caps.CappedFormatter)
        and the widths written in the format string refused from a million."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        template: Any = value.__self__
        if not isinstance(template, str):
            return None
        str_type = type(template)
        is_format_map = value.__name__ == "format_map"
        meter = self

        def capped(*args: Any, **kwargs: Any) -> str:
            caps.cap_format(template, "str.format()")
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            formatter: caps.CappedFormatter
            if isinstance(template, Markup):
                formatter = caps.CappedEscapeFormatter(meter, meter, len(template), escape=template.escape)
            else:
                formatter = caps.CappedFormatter(meter, meter, len(template))
            return str_type(formatter.vformat(template, args, kwargs))

        return update_wrapper(capped, value)

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        """Compile with each `{% for %}` iterating through `counted`, each item costing one unit per 16 nodes of the
        loop's body (at least one)."""
        for loop in source.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Call) and loop.iter.node is _COUNT_ITEMS):
                size = sum(1 for part in (*loop.body, *loop.else_) for _ in part.find_all(nodes.Node))
                weight = nodes.Const(1 + size // 16, lineno=loop.iter.lineno)
                loop.iter = nodes.Call(_COUNT_ITEMS, [loop.iter, weight], [], None, None, lineno=loop.iter.lineno)
        # Jinja evaluates constant expressions while compiling (filters of constants included): they get a small
        # budget of their own, and one that exceeds it is left to run with the template, against the render's.
        saved = self.ops, self.max_ops, self.exhausted, self._folding
        self.ops, self.max_ops, self.exhausted, self._folding = 0, FOLDING_OPS, False, True
        try:
            return super()._generate(source, *args, **kwargs)
        finally:
            self.ops, self.max_ops, self.exhausted, self._folding = saved

    def charge(self, ops: int) -> None:
        """Spend `ops` units of the budget."""
        self.ops += ops
        if self.ops > self.max_ops:
            self._over_budget()

    def counted(self, iterable: Iterable[Any], weight: int = 1) -> Iterator[Any]:
        """A loop's (or a filter's) items, each costing `weight` units of the budget."""
        for item in iterable:
            self.ops += weight
            if self.ops > self.max_ops:
                self._over_budget()
            yield item

    def _over_budget(self) -> None:
        if self._folding:  # a constant expression too costly to evaluate while compiling: evaluated when run
            raise nodes.Impossible()
        if self.exhausted:
            raise SecurityError("not evaluated: the templates' budget of work ran out above")
        self.exhausted = True
        raise SecurityError(
            f"the templates did more than {self.max_ops} units of work ({OPS_PER_RUN} per run of --max-runs: "
            "loop items, calls, filters, values built): nested loops or recursion? (--max-runs raises the budget)"
        )


def _callee(func: Any) -> str:
    """What giving a secret to `func` does, in words."""
    if func is _count_items:
        return "iterated over ({% for %})"
    name = getattr(func, "name", None) if isinstance(func, Macro) else getattr(func, "__name__", None)
    if not isinstance(name, str) or name in ("capped", "<lambda>"):
        return "passed to a function, method or macro"
    return f"passed to {name.lstrip('_')}()"
