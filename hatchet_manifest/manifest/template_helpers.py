"""The helpers templates call: `range` capped at --max-runs, `date_range`, `datetime_range`, `month_range`
(as `RangeHelpers`, a part of `template.Environment`), and the filters `date_add` and `sha256`; their misuse
raises `TemplateFunctionError`, whose message is shown to the user as is."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import SecurityError

from hatchet_manifest.manifest.validate import describe

_STEP = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TemplateFunctionError(Exception):
    """A helper was called wrongly; the message is shown to the user as is."""


class RangeHelpers:
    """`range()` and the date ranges, capped at `max_items` items (--max-runs): a part of `template.Environment`."""

    max_items: int

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
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # "'name' is undefined", as everywhere else
    raise TemplateFunctionError(f"not a date: {describe(value)}")


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


def _sha256(value: Any, length: int = 64) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()[:length]
