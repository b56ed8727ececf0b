"""Queries on more keys than one SQLite statement may carry."""

from __future__ import annotations

import sqlite3

import pytest

from hatchet_manifest.manifest.sqlbatch import select_in


@pytest.mark.slow
def test_select_in_takes_more_keys_than_sqlite_variables() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (m TEXT, k INTEGER)")
    db.executemany("INSERT INTO t VALUES ('a', ?)", [(i,) for i in range(0, 100_000, 3)])
    limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    wanted = list(range(limit + 10_000))  # one IN list of these would fail: "too many SQL variables"
    rows = list(select_in(db, "SELECT k FROM t WHERE m = ? AND k IN ({marks})", wanted, "a"))
    assert sorted(k for (k,) in rows) == list(range(0, 100_000, 3))
