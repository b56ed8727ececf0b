"""Queries on many keys in the private, in-memory SQLite tables (key sets, indexes): one IN list per group of
keys, since SQLite caps the variables of one statement (32766 on common builds, 999 on old ones)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

IN_BATCH = 500


def select_in(db: sqlite3.Connection, sql: str, values: Sequence[Any], *before: Any) -> Iterator[Any]:
    """The rows of `sql` for every value, `{marks}` in it standing for the IN list of a group of IN_BATCH values;
    `before`: the parameters that come ahead of the list."""
    for start in range(0, len(values), IN_BATCH):
        part = list(values[start : start + IN_BATCH])
        yield from db.execute(sql.format(marks=",".join("?" * len(part))), [*before, *part])
