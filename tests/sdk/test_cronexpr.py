"""Cron expressions as Hatchet fires them (hatchet_client.cronexpr): 5 and 6 fields, aliases, @every, the next
firing times across month ends, year ends and leap days, and clear errors naming the field at fault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hatchet_client.cronexpr import CronExpressionError, parse


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 9-17 * * mon-fri", at(2024, 2, 28, 23, 59), [at(2024, 2, 29, 9), at(2024, 2, 29, 9, 15)]),
        ("0 0 29 2 *", at(2024, 3, 1), [at(2028, 2, 29), at(2032, 2, 29)]),  # leap days only
        ("0 0 31 * *", at(2024, 1, 31, 0, 0, 1), [at(2024, 3, 31), at(2024, 5, 31)]),  # months with a 31st
        ("30 23 L * *".replace("L", "28-31"), at(2023, 2, 28, 23, 31), [at(2023, 3, 28, 23, 30)]),
        ("* * * * * *", at(2024, 12, 31, 23, 59, 59), [at(2025, 1, 1), at(2025, 1, 1, 0, 0, 1)]),
        ("*/20 * * * * *", at(2024, 1, 1, 0, 0, 40), [at(2024, 1, 1, 0, 1), at(2024, 1, 1, 0, 1, 20)]),
        ("5 4 * * *", at(2024, 1, 1, 4, 5), [at(2024, 1, 2, 4, 5)]),  # strictly after
        ("0 0 1,15 * 3", at(2024, 5, 1, 0, 0, 1), [at(2024, 5, 8), at(2024, 5, 15)]),  # both set: either day
        ("0 0 */2 * *", at(2024, 1, 30), [at(2024, 1, 31), at(2024, 2, 1)]),  # a step is not a star
        ("0 12 * jan,JUL SUN", at(2024, 1, 1), [at(2024, 1, 7, 12), at(2024, 1, 14, 12)]),
        ("0 0 ? * 0", at(2024, 1, 1), [at(2024, 1, 7)]),
        ("15/20 * * * *", at(2024, 1, 1), [at(2024, 1, 1, 0, 15), at(2024, 1, 1, 0, 35), at(2024, 1, 1, 0, 55)]),
        ("@yearly", at(2024, 6, 1), [at(2025, 1, 1), at(2026, 1, 1)]),
        ("@monthly", at(2024, 1, 31, 12), [at(2024, 2, 1), at(2024, 3, 1)]),
        ("@weekly", at(2024, 1, 1), [at(2024, 1, 7)]),  # Sunday
        ("@daily", at(2024, 2, 28, 1), [at(2024, 2, 29), at(2024, 3, 1)]),
        ("@midnight", at(2023, 12, 31, 23), [at(2024, 1, 1)]),
        ("@hourly", at(2024, 1, 1, 23, 30), [at(2024, 1, 2)]),
        ("@every 1h30m", at(2024, 1, 1, 0, 0, 0), [at(2024, 1, 1, 1, 30), at(2024, 1, 1, 3)]),
    ],
)
def test_next_firings(expression: str, after: datetime, expected: list[datetime]) -> None:
    assert parse(expression).next_times(after, len(expected)) == expected


def test_times_are_utc_whatever_the_zone_given() -> None:
    cron = parse("0 12 * * *")
    paris = timezone(timedelta(hours=1))
    assert cron.next_after(datetime(2024, 1, 1, 12, 30, tzinfo=paris)) == at(2024, 1, 1, 12)  # 11:30 UTC
    assert cron.next_after(datetime(2024, 1, 1, 13, 30, tzinfo=paris)) == at(2024, 1, 2, 12)  # 12:30 UTC
    assert cron.next_after(datetime(2024, 1, 1, 11, 0)) == at(2024, 1, 1, 12)  # naive: UTC
    assert cron.next_after(at(2024, 1, 1, 11, 59, 59, 999999)) == at(2024, 1, 1, 12)


def test_five_fields_fire_on_second_zero() -> None:
    five, six = parse("*/5 * * * *"), parse("0 */5 * * * *")
    assert (five.seconds, five.minutes) == ((0,), tuple(range(0, 60, 5)))
    assert five.next_times(at(2024, 1, 1), 3) == six.next_times(at(2024, 1, 1), 3)
    assert parse("  0 3 * * *  ").expression == "0 3 * * *"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "cron expression '': the expression is empty"),
        (
            "* * * *",
            "cron expression '* * * *': expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), found 4",
        ),
        ("60 * * * * *", "cron expression '60 * * * * *': second field '60': 60 is above the maximum 59"),
        ("61 * * * *", "cron expression '61 * * * *': minute field '61': 61 is above the maximum 59"),
        ("0 24 * * *", "cron expression '0 24 * * *': hour field '24': 24 is above the maximum 23"),
        ("0 0 0 * *", "cron expression '0 0 0 * *': day of month field '0': 0 is below the minimum 1"),
        ("0 0 1 13 *", "cron expression '0 0 1 13 *': month field '13': 13 is above the maximum 12"),
        ("0 0 * * 7", "cron expression '0 0 * * 7': day of week field '7': 7 is above the maximum 6 (Sunday is 0)"),
        (
            "0 0 * foo *",
            "cron expression '0 0 * foo *': month field 'foo': 'foo' is not a number (or a name such as jan)",
        ),
        ("0 0 L * *", "cron expression '0 0 L * *': day of month field 'L': 'L' is not a number"),
        (
            "0 0 * * 1#2",
            "cron expression '0 0 * * 1#2': day of week field '1#2': '1#2' is not a number (or a name such as mon)",
        ),
        (
            "*/0 * * * *",
            "cron expression '*/0 * * * *': minute field '*/0': the step of '*/0' must be a positive number",
        ),
        ("1/2/3 * * * *", "cron expression '1/2/3 * * * *': minute field '1/2/3': '1/2/3' has more than one '/'"),
        ("5-1 * * * *", "cron expression '5-1 * * * *': minute field '5-1': the range '5-1' starts after it ends"),
        ("*-5 * * * *", "cron expression '*-5 * * * *': minute field '*-5': '*-5': a range cannot start with '*'"),
        ("1,,2 * * * *", "cron expression '1,,2 * * * *': minute field '1,,2': a list has an empty element"),
        (
            "1-2-3 * * * *",
            "cron expression '1-2-3 * * * *': minute field '1-2-3': '1-2-3' is not a number, a name or a range a-b",
        ),
        ("-1 * * * *", "cron expression '-1 * * * *': minute field '-1': '-1' is not a number, a name or a range a-b"),
        ("0 0 30 2 *", "cron expression '0 0 30 2 *': it never fires: no month of the expression has such a day"),
        ("0 0 31 4,6 *", "cron expression '0 0 31 4,6 *': it never fires: no month of the expression has such a day"),
        (
            "@reboot",
            "cron expression '@reboot': unknown alias '@reboot' (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>)",
        ),
        ("@every", "cron expression '@every': @every needs a duration such as 90s or 1h30m, not ''"),
        ("@every 500ms", "cron expression '@every 500ms': @every needs at least 1s, not '500ms'"),
        ("@every 1 day", "cron expression '@every 1 day': @every needs a duration such as 90s or 1h30m, not '1 day'"),
        (
            "CRON_TZ=Europe/Paris 0 3 * * *",
            "cron expression 'CRON_TZ=Europe/Paris 0 3 * * *': time zones (TZ=, CRON_TZ=) are not supported: Hatchet fires crons in UTC",
        ),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronExpressionError) as info:
        parse(expression)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_the_error_carries_the_field() -> None:
    with pytest.raises(CronExpressionError) as info:
        parse("0 0 32 * *")
    assert (info.value.field, info.value.problem, info.value.expression) == (
        "day of month",
        "32 is above the maximum 31",
        "0 0 32 * *",
    )
    with pytest.raises(CronExpressionError, match="a cron expression is a string, not int"):
        parse(5)  # type: ignore[arg-type]


def test_cron_expressions_load_without_grpc() -> None:
    """The manifest stage checks cron expressions and must not load the client's gRPC (rendering never pays for it);
    the package's names still import as before."""
    import subprocess
    import sys

    code = "import sys, hatchet_client.cronexpr; assert 'grpc' not in sys.modules; from hatchet_client import Hatchet"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
