"""Cron expressions as Hatchet fires them, in UTC: parsing with clear errors, and the next firing times.

Hatchet's scheduler (gocron over robfig/cron, with seconds enabled) reads:

- 5 fields `minute hour day-of-month month day-of-week` (second 0), or 6 with the SECOND first;
- in each field: `*` or `?` (any), a number, a range `a-b`, a step `*/n`, `a/n` (from a to the end) or `a-b/n`,
  and lists of those joined by `,`; months 1-12 or `jan`-`dec`, days of the week 0-6 (Sunday is 0, not 7) or
  `sun`-`sat`, names in any case;
- the aliases `@yearly` (= `@annually`), `@monthly`, `@weekly` (Sunday), `@daily` (= `@midnight`), `@hourly`,
  and `@every <duration>` (Go's duration: `90s`, `1h30m`; whole seconds, at least 1s), which fires that long
  after the moment it is counted from.

When both the day of month and the day of week are restricted (neither starts with `*` or `?`), a day matching
EITHER fires (classic cron); otherwise a day must match both. Extensions of other crons (`L`, `W`, `#`, 7 for
Sunday, `@reboot`) are refused, as are time zones (`CRON_TZ=`): Hatchet fires crons in UTC. Stricter than Hatchet
in two ways, so that an expression accepted here always fires there: a range written `*-5` is refused (Hatchet
reads it as `*`), and so is an expression that can never fire (`0 0 30 2 *`: Hatchet accepts it and never fires).

    cron = parse("*/15 9-17 * * mon-fri")      # CronExpressionError naming the bad field otherwise
    cron.next_after(datetime.now(UTC))        # the first firing strictly after that moment
    cron.next_times(datetime.now(UTC), 3)     # the next three

Pure: no I/O, no gRPC; naive datetimes are taken as UTC, answers are aware UTC datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from hatchet_client.errors import CronExpressionError

__all__ = ["ALIASES", "Cron", "CronExpressionError", "parse"]

ALIASES = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
MAX_EXPRESSION_CHARS = 1000
_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_MONTHS = {
    name: i + 1
    for i, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_NAMES: tuple[dict[str, int] | None, ...] = (None, None, None, None, _MONTHS, _WEEKDAYS)
_INT = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: 29 (leap years exist)
_SEARCH_YEARS = 9  # a 29 February can be 8 years from the next (2096 -> 2104)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed expression. The sets are sorted tuples; `every` is the `@every` interval in seconds (then the
    sets are empty). `day_or`: the day of month and the day of week are both restricted, and either fires."""

    expression: str
    seconds: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    hours: tuple[int, ...] = ()
    days_of_month: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    days_of_week: tuple[int, ...] = ()
    day_or: bool = False
    every: int | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first firing strictly after `moment` (whole seconds, UTC)."""
        start = _utc(moment).replace(microsecond=0)
        if self.every is not None:
            return start + timedelta(seconds=self.every)
        start += timedelta(seconds=1)
        day = start.date()
        h0, m0, s0 = start.hour, start.minute, start.second
        last = date(min(day.year + _SEARCH_YEARS, 9999), 12, 31)
        months, doms, dows = frozenset(self.months), frozenset(self.days_of_month), frozenset(self.days_of_week)
        while day <= last:
            if day.month not in months:  # to the first day of the next month
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                h0 = m0 = s0 = 0
                continue
            dom, dow = day.day in doms, (day.weekday() + 1) % 7 in dows
            if (dom or dow) if self.day_or else (dom and dow):
                found = self._first_time(h0, m0, s0)
                if found is not None:
                    return datetime(day.year, day.month, day.day, *found, tzinfo=UTC)
            day += timedelta(days=1)
            h0 = m0 = s0 = 0
        raise CronExpressionError(self.expression, "does not fire in the years searched")  # parse() excludes it

    def next_times(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` firings after `after`, in order."""
        times: list[datetime] = []
        moment = after
        for _ in range(count):
            moment = self.next_after(moment)
            times.append(moment)
        return times

    def _first_time(self, h0: int, m0: int, s0: int) -> tuple[int, int, int] | None:
        """The first (hour, minute, second) of a matching day at or after h0:m0:s0."""
        for h in self.hours:
            if h < h0:
                continue
            for m in self.minutes:
                if h == h0 and m < m0:
                    continue
                for s in self.seconds:
                    if h == h0 and m == m0 and s < s0:
                        continue
                    return h, m, s
        return None


def parse(expression: str) -> Cron:
    """The expression checked as Hatchet reads it (see the module's description); CronExpressionError otherwise,
    naming the field at fault."""
    if not isinstance(expression, str):
        raise CronExpressionError(repr(expression), f"a cron expression is a string, not {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise CronExpressionError(expression, "the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CronExpressionError(expression, f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronExpressionError(
            expression, "time zones (TZ=, CRON_TZ=) are not supported: Hatchet fires crons in UTC"
        )
    if text.startswith("@"):
        return _alias(expression, text)
    fields = text.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    elif len(fields) != 6:
        raise CronExpressionError(
            expression,
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), found {len(fields)}",
        )
    sets: list[tuple[int, ...]] = []
    stars: list[bool] = []
    for i, field in enumerate(fields):
        values, star = _field(expression, i, field)
        sets.append(values)
        stars.append(star)
    seconds, minutes, hours, doms, months, dows = sets
    cron = Cron(text, seconds, minutes, hours, doms, months, dows, day_or=not stars[3] and not stars[5])
    if not stars[3] and stars[5] and not any(d <= _DAYS_IN_MONTH[m] for m in cron.months for d in cron.days_of_month):
        raise CronExpressionError(expression, "it never fires: no month of the expression has such a day")
    return cron


def _alias(expression: str, text: str) -> Cron:
    if text in ALIASES:
        cron = parse(ALIASES[text])
        return Cron(
            text,
            cron.seconds,
            cron.minutes,
            cron.hours,
            cron.days_of_month,
            cron.months,
            cron.days_of_week,
            cron.day_or,
        )
    if text.startswith("@every ") or text == "@every":
        return Cron(text, every=_every(expression, text[len("@every") :].strip()))
    known = ", ".join([*ALIASES, "@every <duration>"])
    raise CronExpressionError(expression, f"unknown alias {text.split()[0]!r} (known: {known})")


def _every(expression: str, text: str) -> int:
    """Whole seconds of a Go duration (`1h30m`, `90s`, `1.5h`), at least 1."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        pos = match.end()
    if not text or pos != len(text):
        raise CronExpressionError(expression, f"@every needs a duration such as 90s or 1h30m, not {text!r}")
    if total < 1:
        raise CronExpressionError(expression, f"@every needs at least 1s, not {text!r}")
    return int(total)


def _field(expression: str, index: int, field: str) -> tuple[tuple[int, ...], bool]:
    """The values of one field, and whether it is a star (`*` or `?`, alone or in a list, without a step > 1)."""
    low, high = _BOUNDS[index]
    values: set[int] = set()
    star = False
    for part in field.split(","):
        part_values, part_star = _range(expression, index, field, part, low, high)
        values |= part_values
        star = star or part_star
    return tuple(sorted(values)), star


def _range(expression: str, index: int, field: str, part: str, low: int, high: int) -> tuple[set[int], bool]:
    def fail(problem: str) -> CronExpressionError:
        return CronExpressionError(expression, problem, _FIELDS[index], field)

    if not part:
        raise fail("a list has an empty element")
    range_text, slash, step_text = part.partition("/")
    if "/" in step_text:
        raise fail(f"{part!r} has more than one '/'")
    star = range_text in ("*", "?")
    if star:
        start, end = low, high
    else:
        if range_text.startswith(("*", "?")):
            raise fail(f"{part!r}: a range cannot start with {range_text[0]!r}")
        bounds = range_text.split("-")
        if len(bounds) > 2 or not all(bounds):
            raise fail(f"{part!r} is not a number, a name or a range a-b")
        start = _value(bounds[0], index, fail)
        end = _value(bounds[1], index, fail) if len(bounds) == 2 else start
    step = 1
    if slash:
        if not _INT.fullmatch(step_text):
            raise fail(f"the step {step_text!r} is not a number")
        step = int(step_text)
        if step <= 0:
            raise fail(f"the step of {part!r} must be a positive number")
        if not star and "-" not in range_text:  # `a/n` means from a to the end
            end = high
        if step > 1:
            star = False
    if start < low:
        raise fail(f"{start} is below the minimum {low}")
    if end > high:
        raise fail(f"{end} is above the maximum {high}" + (" (Sunday is 0)" if index == 5 and end == 7 else ""))
    if start > end:
        raise fail(f"the range {part!r} starts after it ends")
    return set(range(start, end + 1, step)), star


def _value(text: str, index: int, fail: Callable[[str], CronExpressionError]) -> int:
    names = _NAMES[index]
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if not _INT.fullmatch(text):
        known = " (or a name such as jan)" if index == 4 else " (or a name such as mon)" if index == 5 else ""
        raise fail(f"{text!r} is not a number{known}")
    value = int(text)
    if value < 0:
        raise fail(f"negative numbers are not allowed: {text}")
    return value


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
