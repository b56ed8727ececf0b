"""The sandboxed Jinja environment templates run in, its caps and its helpers.

Templates are untrusted (they arrive in pull requests): Jinja's immutable sandbox blocks attribute escapes and
mutation of shared values, there is no loader (no `include`/`import` of files), `range` and the helpers are
capped, `*` and `**` cannot build huge values, and `env()` refuses names that look like credentials. Work is
capped too: every `{% for %}` item and every call (a macro calling itself included) counts against one budget
per render, OPS_PER_RUN times --max-runs, so that nested loops or recursion cannot keep a CI job busy for
hours.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, Template, nodes, pass_context, pass_environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MASK = "***"
REVEAL_VAR = "__hatchet_manifest_reveal__"
MAX_VALUE_LEN = 4 << 20  # longest string or list a template may build in one step (the request limit)
_WIDTH = re.compile(r"\d{7,}|[1-9]\d{6}")  # a width or precision of a million or more in a format string
_PADDING = {"ljust", "rjust", "center", "zfill"}
_CREDENTIAL = re.compile(r"TOKEN|SECRET|PASSW|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_?KEY", re.I)
_STEP = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
OPS_PER_RUN = 100  # loop items and calls a render may spend, per run of --max-runs


class TemplateFunctionError(Exception):
    """A helper was called wrongly; the message is shown to the user as is."""


def _cap_len(n: int, what: str) -> None:
    if n > MAX_VALUE_LEN:
        raise SecurityError(f"{what} would build a value longer than {MAX_VALUE_LEN}")


def _cap_format(fmt: str, what: str) -> None:
    if _WIDTH.search(fmt):
        raise SecurityError(f"{what}: widths and precisions of a million or more are refused")


def checked_concat(values: Iterable[Any]) -> str:
    """`a ~ b` and text mixed with expressions, capped like everything else."""
    # Joined first, then measured: each part is capped already and a template names few parts, so the transient
    # string is bounded, and the hot path (a key like "run-{{ i }}") costs about what Jinja's own join does.
    text = "".join([v if type(v) is str else str(v) for v in values])
    _cap_len(len(text), "'~'")
    return text


def render_capped(template: Template, variables: dict[str, Any], limit: int) -> str:
    """Render a template as a string, refusing output longer than `limit` characters as it streams."""
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > limit:
            raise SecurityError(f"the template renders more than {limit} characters")
        chunks.append(chunk)
    return "".join(chunks)


@pass_environment
def _count_items(environment: Environment, iterable: Iterable[Any]) -> Iterator[Any]:
    """Wraps the iterable of every `{% for %}` (see Environment._generate)."""
    return environment.counted(iterable)


_COUNT_ITEMS = nodes.ImportedName(f"{__name__}._count_items")


class _CodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _capped_filter(name: str, func: Callable[..., Any], width_arg: int) -> Callable[..., Any]:
    def capped(*args: Any, **kwargs: Any) -> Any:
        width = args[width_arg] if len(args) > width_arg else kwargs.get("width", 0)
        if isinstance(width, int) and width > MAX_VALUE_LEN:
            raise SecurityError(f"the {name} filter's width is capped at {MAX_VALUE_LEN}")
        if name == "format" and args and isinstance(args[0], str):
            _cap_format(args[0], "format")
        return func(*args, **kwargs)

    return capped


class Environment(ImmutableSandboxedEnvironment):
    """Sandboxed, strict, and capped at `max_items` loop items and `MAX_VALUE_LEN` per built value."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _CodeGenerator
    checked_concat = staticmethod(checked_concat)

    def __init__(self, max_items: int) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self.max_items = max_items
        self.max_ops = OPS_PER_RUN * max(max_items, 1000)
        self.ops = 0  # loop items and calls spent so far
        self.exhausted = False  # the budget ran out (said once, where it happened)
        self.missing_secrets: set[str] = set()  # secret() names a preview found unset
        self.globals.pop("lipsum", None)
        self.globals.update(
            range=self._range,
            env=_env,
            secret=_secret,
            date_range=self._date_range,
            datetime_range=self._datetime_range,
            month_range=self._month_range,
        )
        for name, width_arg in (("center", 1), ("indent", 1), ("format", 0)):
            self.filters[name] = _capped_filter(name, self.filters[name], width_arg)
        self.filters.update(
            to_json=_to_json,
            from_json=json.loads,
            sha256=_sha256,
            date_add=_date_add,
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("the exponent of ** is capped at 64")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    _cap_len(len(seq) * n, "'*'")
        elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _cap_len(len(left) + len(right), "'+'")
        elif operator == "%" and isinstance(left, str):
            _cap_format(left, "'%'")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Calls count against the budget; method calls on strings that could build huge values are capped."""
        __self.ops += 1
        if __self.ops > __self.max_ops:
            __self._over_budget()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in _PADDING and args and isinstance(args[0], int):
                _cap_len(args[0], f"str.{name}()")
            elif name == "expandtabs":
                tab = args[0] if args else kwargs.get("tabsize", 8)
                if isinstance(tab, int):
                    _cap_len(len(owner) + owner.count("\t") * tab, "str.expandtabs()")
            elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
                count = owner.count(args[0]) if args[0] else len(owner) + 1
                _cap_len(len(owner) + count * max(0, len(args[1]) - len(args[0])), "str.replace()")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        fmt = super().wrap_str_format(value)
        if fmt is None:
            return None
        template = value.__self__

        def capped(*args: Any, **kwargs: Any) -> str:
            _cap_format(template, "str.format()")
            return fmt(*args, **kwargs)

        return capped

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        """Compile with each `{% for %}` iterating through `counted`."""
        for loop in source.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Call) and loop.iter.node is _COUNT_ITEMS):
                loop.iter = nodes.Call(_COUNT_ITEMS, [loop.iter], [], None, None, lineno=loop.iter.lineno)
        return super()._generate(source, *args, **kwargs)

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """A loop's items, each counted against the budget."""
        for item in iterable:
            self.ops += 1
            if self.ops > self.max_ops:
                self._over_budget()
            yield item

    def _over_budget(self) -> None:
        if self.exhausted:
            raise SecurityError("not evaluated: the templates' budget of loop items and calls ran out above")
        self.exhausted = True
        raise SecurityError(
            f"the templates ran more than {self.max_ops} loop items and calls ({OPS_PER_RUN} per run of "
            "--max-runs): nested loops or recursion? (--max-runs raises the budget)"
        )

    def _cap(self, n: int, what: str) -> None:
        if n > self.max_items:
            raise SecurityError(f"{what} has {n} items, more than the cap of {self.max_items} (--max-runs)")

    def _range(self, *args: int) -> range:
        rng = range(*args)
        self._cap(len(rng), "range()")
        return rng

    def _date_range(self, start: Any, end: Any, step: Any = "1d", fmt: str = "%Y-%m-%d") -> list[str]:
        """Dates from start to end inclusive: date_range("2026-01-01", "2026-01-31") -> 31 ISO dates."""
        first, last = _as_datetime(start), _as_datetime(end)
        return [d.strftime(fmt) for d in self._steps(first, last, _step(step), "date_range()")]

    def _datetime_range(self, start: Any, end: Any, step: Any = "1h", fmt: str = "%Y-%m-%dT%H:%M:%S") -> list[str]:
        """Datetimes from start to end inclusive, every `step` (`15m`, `1h`, `1d`, `1w`, or seconds)."""
        first, last = _as_datetime(start), _as_datetime(end)
        return [d.strftime(fmt) for d in self._steps(first, last, _step(step), "datetime_range()")]

    def _month_range(self, start: Any, end: Any, fmt: str = "%Y-%m-%d") -> list[str]:
        """First days of the months from start's month to end's month inclusive."""
        first, last = _as_datetime(start), _as_datetime(end)
        months = (last.year - first.year) * 12 + last.month - first.month + 1
        self._cap(max(months, 0), "month_range()")
        out = []
        for k in range(max(months, 0)):
            y, m = divmod(first.month - 1 + k, 12)
            out.append(date(first.year + y, m + 1, 1).strftime(fmt))
        return out

    def _steps(self, first: datetime, last: datetime, step: timedelta, what: str) -> Iterator[datetime]:
        if step <= timedelta(0):
            raise TemplateFunctionError(f"{what}: the step must be positive")
        n = 0 if last < first else (last - first) // step + 1
        self._cap(n, what)
        return (first + k * step for k in range(n))


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise TemplateFunctionError(f"not an ISO 8601 date: {value!r}") from None
    raise TemplateFunctionError(f"not a date: {value!r}")


def _step(step: Any) -> timedelta:
    if isinstance(step, int) and not isinstance(step, bool):
        return timedelta(seconds=step)
    m = _STEP.match(str(step))
    if not m:
        raise TemplateFunctionError(f"bad step {step!r}: use a number of seconds or e.g. '15m', '1h', '1d', '1w'")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _date_add(value: Any, days: int = 0, hours: int = 0, minutes: int = 0, fmt: str | None = None) -> str:
    """`"2026-01-31" | date_add(days=1)` -> "2026-02-01" (keeps a date a date unless fmt says otherwise)."""
    moved = _as_datetime(value) + timedelta(days=days, hours=hours, minutes=minutes)
    if fmt is None:
        fmt = "%Y-%m-%d" if isinstance(value, str) and len(value) == 10 else "%Y-%m-%dT%H:%M:%S"
    return moved.strftime(fmt)


def _to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(value: Any, length: int = 64) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()[:length]


def _env(name: str, default: Any = StrictUndefined) -> Any:
    """env("NAME", default): an environment variable; without a default, unset is an error."""
    if _CREDENTIAL.search(name) or name.startswith("HATCHET_CLIENT_"):
        raise TemplateFunctionError(f"env({name!r}) looks like a credential: use secret({name!r})")
    value = os.environ.get(name)
    if value is None:
        if default is StrictUndefined:
            raise TemplateFunctionError(f"environment variable {name} is not set (give env() a default)")
        return default
    return value


@pass_context
def _secret(context: Context, name: str) -> str:
    """secret("NAME"): an environment variable shown as *** everywhere but in what is submitted."""
    if name == "HATCHET_CLIENT_TOKEN":
        raise TemplateFunctionError("secret('HATCHET_CLIENT_TOKEN') is refused: the API token is not run input")
    value = os.environ.get(name)
    reveal = context.resolve_or_missing(REVEAL_VAR) is True
    if value is None:
        if reveal:
            raise TemplateFunctionError(f"secret {name} is not set in the environment")
        # A preview needs no secret value (pull-request jobs often have none): say so, show the mask.
        env = context.environment
        if isinstance(env, Environment):
            env.missing_secrets.add(name)
        return MASK
    return value if reveal else MASK
