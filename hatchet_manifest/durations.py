"""Durations given on the command line: `90m`, `12h`, `30d`, `2w`."""

from __future__ import annotations

from datetime import timedelta


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` -> timedelta."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise ValueError(f"bad duration {text!r}: use e.g. 90m, 12h, 30d, 2w")
    return timedelta(**{units[unit]: int(number)})
