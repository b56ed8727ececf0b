"""The per-operation caps of the template sandbox: what one operation may build, and what it costs.

Every operation that can build a large value is checked before it runs, from its operands (not after: by then
the memory is spent): `*`, `+`, `-`, `**` and `%` (`template.Environment.call_binop`), `str.format` and
`%`-style widths, precisions and arguments, string methods (padding, `join`, `replace`, `translate`,
`expandtabs`), buffered output (macros, `{% set %}` blocks), the text of containers written with `{{ }}` or `~`,
and the filters that build strings or lists (`join`, `replace`, `indent`, `center`, `wordwrap`, `format`, `sum`,
`batch`, `slice`, `tojson`, `pprint`, `string`...: `filter_caps.py`). A value is at most MAX_VALUE_LEN characters or items; an
integer built by arithmetic at most MAX_INT_BITS bits.

Every operation also costs work units against the render's budget (`Environment.charge`): a call CALL_OPS, a
macro call MACRO_OPS (plus its size), a filter or test FILTER_OPS, a loop item one unit (plus the size of the
loop's body), and every value built or walked one unit per item or per 16 characters. A unit is about the time
of one loop item, so that the budget (100 units per run of --max-runs) is a few seconds of rendering.

These are defense in depth: the commands also render in a worker process bounded in memory and time as a whole
(`sandbox.py`), which stops what no cap here names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedFormatter
from jinja2.utils import Namespace
from markupsafe import EscapeFormatter

MAX_VALUE_LEN = 4 << 20  # longest string or list a template may build in one step (the request limit)
MAX_WIDTH = 1_000_000  # widths and precisions of a million or more are refused
MAX_INT_BITS = 4096  # integers built by arithmetic (`10 ** 1233` is the largest power of ten)
QUADRATIC_LIMIT = 1 << 26  # character moves an operation with quadratic cost may make (wordwrap, sum of lists)
LONGEST_WORD = 4096  # urlize's regular expressions are quadratic in the length of a word

CALL_OPS = 12  # a call of a helper or a method (about 12 loop items of time in the sandbox)
MACRO_OPS = 32  # a macro call, plus one unit per 32 bytes of its compiled body
FILTER_OPS = 3  # a filter or a test, plus the size of its operands and of what it returns

_WIDTH = re.compile(r"\d{7,}|[1-9]\d{6}")  # a width or precision of a million or more in a format string
_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d*))?[hlL]?(?P<conv>.)?", re.S
)
_DIGITS = re.compile(r"\d+")
ITEM_SHIFT: dict[type, int] = {str: 4, bytes: 4, list: 0, tuple: 0, dict: 0, set: 0, frozenset: 0, range: 0}
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
_CONTAINERS = (list, tuple, set, frozenset, *_VIEWS)


class Meter(Protocol):
    """What the caps charge their work to (template.Environment)."""

    def charge(self, ops: int) -> None: ...

    def counted(self, iterable: Any, weight: int = 1) -> Any: ...


def weight(value: Any) -> int:
    """The work of walking `value` once: one unit per item, or per 16 characters; 0 for other values."""
    shift = ITEM_SHIFT.get(type(value))
    return 0 if shift is None else len(value) >> shift


def cap_len(n: int, what: str) -> None:
    if n > MAX_VALUE_LEN:
        raise SecurityError(f"{what} would build a value longer than {MAX_VALUE_LEN}")


def cap_int(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise SecurityError(f"{what} would build an integer of more than {MAX_INT_BITS} bits")


def cap_format(fmt: str, what: str) -> None:
    """Widths and precisions written in a format string."""
    if _WIDTH.search(fmt):
        raise SecurityError(f"{what}: widths and precisions of a million or more are refused")


def _digits(n: int) -> int:
    return (n.bit_length() * 1233 >> 12) + 1  # at most the number of decimal digits of n


def text_size(value: Any, limit: int = MAX_VALUE_LEN) -> tuple[int, int]:
    """(size, depth): a lower bound of the length of `str(value)` (exact for a string; it stops counting once
    past `limit`, so that its cost is bounded by what it measures), and how deep containers nest in it.

    Containers count their separators and walk their items (a list holding the same long string a thousand
    times counts it a thousand times, as `str` would write it). Values of other types count one character and
    are never converted (a secret refuses to be)."""
    size = 0
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        t = type(v)
        if t is str:
            size += len(v) + (2 if d else 0)
        elif t is int:
            size += _digits(v)
        elif t is dict:
            size += 2 + 4 * len(v)
            if size <= limit:
                depth = max(depth, d + 1)
                stack.extend((k, d + 1) for k in v)
                stack.extend((x, d + 1) for x in v.values())
        elif t in _CONTAINERS:
            size += 2 + 2 * len(v)
            if size <= limit:
                depth = max(depth, d + 1)
                stack.extend((x, d + 1) for x in v)
        elif isinstance(v, str):
            size += len(v) + (2 if d else 0)
        elif isinstance(v, Namespace):
            stack.append((v._Namespace__attrs, d))  # its repr shows its values
        else:
            size += 1
        if size > limit:
            break
    return size, depth


def cap_text(meter: Meter, value: Any, what: str, factor: int = 1) -> int:
    """Refuse to write `value` as text (times `factor`: escapes, indentation) when that is too long; charges the
    walk. Returns the size."""
    if type(value) is str:
        size = len(value)
    else:
        size, _ = text_size(value)
        meter.charge(size >> 4)
    cap_len(size * factor, what)
    return size


def printf_size(fmt: str, args: Any, what: str) -> int:
    """The length `fmt % args` may have, refusing widths and precisions (written, or given by `*`) of a million or
    more and results longer than MAX_VALUE_LEN, before anything is formatted."""
    cap_format(fmt, what)
    mapping = args if isinstance(args, Mapping) else None
    positional: tuple[Any, ...] = args if type(args) is tuple else (args,)
    i = 0
    total = len(fmt)
    for m in _PRINTF.finditer(fmt):
        if m.group("conv") == "%":
            continue
        for spec in (m.group("width"), m.group("prec")):
            if spec == "*":
                n = positional[i] if i < len(positional) else 0
                i += 1
                if type(n) is int:
                    if abs(n) >= MAX_WIDTH:
                        raise SecurityError(f"{what}: widths and precisions of a million or more are refused")
                    total += abs(n)
            elif spec:
                total += int(spec)
        key = m.group("key")
        if key is not None:
            value = mapping.get(key) if mapping is not None else None
        else:
            value = positional[i] if i < len(positional) else None
            i += 1
        total += text_size(value)[0]
        cap_len(total, what)
    return total


def spec_width(spec: str, what: str) -> int:
    """The widths and precisions of a `str.format` field's (resolved) format spec, refused from a million."""
    total = 0
    for digits in _DIGITS.findall(spec):
        if len(digits) > 6 or int(digits) >= MAX_WIDTH:
            raise SecurityError(f"{what}: widths and precisions of a million or more are refused")
        total += int(digits)
    return total


class CappedFormatter(SandboxedFormatter):
    """str.format in the sandbox, each field checked (widths given by nested fields included, `{:>{}}`) and the
    whole result capped, before each field is formatted."""

    def __init__(self, env: Any, meter: Meter, size: int, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._meter = meter
        self._size = size  # the literal text of the format string

    def format_field(self, value: Any, format_spec: str) -> Any:
        what = "str.format()"
        extra = spec_width(format_spec, what) if format_spec else 0
        size = len(value) if type(value) is str else text_size(value)[0]
        cap_len(self._size + size + extra, what)
        out = super().format_field(value, format_spec)
        self._size += len(out)
        cap_len(self._size, what)
        self._meter.charge(len(out) >> 4)
        return out


class CappedEscapeFormatter(CappedFormatter, EscapeFormatter):
    pass


# -- string methods and other calls ---------------------------------------------------------------------------

_PADDING = {"ljust", "rjust", "center", "zfill"}
# Methods of values whose cost does not grow with the value's size (the others are charged its size).
_CHEAP_METHODS = frozenset(
    {"startswith", "endswith", "isascii", "get", "keys", "values", "items", "bit_length", "conjugate", "cycle"}
)


def method_args(meter: Meter, owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check and charge a call of method `name` of `owner` (a value a template holds); returns the arguments to
    call it with (an iterable given to `join` is read into a list, so that it can be measured)."""
    ops = CALL_OPS
    if name not in _CHEAP_METHODS:
        ops += weight(owner)
        for a in args:
            ops += weight(a)
    meter.charge(ops)
    if isinstance(owner, str | bytes):
        kind = "str" if isinstance(owner, str) else "bytes"
        text: Any = owner
        if name in _PADDING and args and type(args[0]) is int:
            cap_len(args[0], f"{kind}.{name}()")
        elif name == "expandtabs":
            tab = args[0] if args else kwargs.get("tabsize", 8)
            if type(tab) is int:
                tabs = text.count("\t" if kind == "str" else b"\t")
                cap_len(len(owner) + tabs * max(tab, 0), f"{kind}.expandtabs()")
        elif name == "replace" and len(args) >= 2 and type(args[0]) is type(args[1]) is type(owner):
            old, new = args[0], args[1]
            count = text.count(old) if old else len(owner) + 1
            if len(args) > 2 and type(args[2]) is int and args[2] >= 0:
                count = min(count, args[2])
            cap_len(len(owner) + count * max(0, len(new) - len(old)), f"{kind}.replace()")
        elif name == "join" and args:
            items = args[0] if type(args[0]) in (list, tuple) else list(args[0])
            size = len(owner) * max(len(items) - 1, 0)
            for x in items:
                if isinstance(x, str | bytes):
                    size += len(x)
                    if size > MAX_VALUE_LEN:
                        break
            cap_len(size, f"{kind}.join()")
            meter.charge(len(items) + (size >> 4))
            return (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], dict):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            cap_len(len(owner) * max(longest, 1), f"{kind}.translate()")
    elif type(owner) is int and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        if type(length) is int:
            cap_len(length, "int.to_bytes()")
    return args


def check_result(meter: Meter, result: Any, what: str) -> None:
    """What a call of a method or helper returned: charged, and refused when longer than a value may be (it
    was built already, from operands the caps let through: this only keeps it from growing further)."""
    t = type(result)
    shift = ITEM_SHIFT.get(t)
    if shift is not None:
        n = len(result)
        cap_len(n, what)
        if n >> shift:
            meter.charge(n >> shift)
    elif t is int and result.bit_length() > MAX_INT_BITS:
        cap_int(result.bit_length(), what)


# -- binary operators -----------------------------------------------------------------------------------------


def binop_check(meter: Meter, operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` when it would build too long a value or too large an integer; charges
    what it builds."""
    lt, rt = type(left), type(right)
    if lt is int and rt is int:
        if operator == "**":
            if abs(right) > 64:
                raise SecurityError("the exponent of ** is capped at 64")
            if right > 0 and abs(left) > 1:
                cap_int(left.bit_length() * right, "'**'")
        elif operator == "*":
            cap_int(left.bit_length() + right.bit_length(), "'*'")
        elif operator in ("+", "-"):
            cap_int(max(left.bit_length(), right.bit_length()) + 1, f"'{operator}'")
        return
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and type(n) is int:
                size = len(seq) * n
                cap_len(size, "'*'")
                meter.charge(size >> 4 if isinstance(seq, str) else size)
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            size = len(left) + len(right)
            cap_len(size, "'+'")
            meter.charge(size >> 4 if isinstance(left, str) else size)
    elif operator == "%" and isinstance(left, str):
        meter.charge(printf_size(left, right, "'%'") >> 4)
