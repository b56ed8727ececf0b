"""A set of run keys whose memory stays small for millions of keys.

A Python set of a million keys costs ~70 MB; this keeps 64-bit hashes in an in-memory SQLite B-tree
(about 15 bytes a key) and checks a whole batch per call. Keys are compared by Python's 64-bit SipHash
of the text: for a million keys the chance of a false duplicate is about 3e-8.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


class KeySet:
    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", isolation_level=None)
        self._db.execute("CREATE TABLE k (h INTEGER PRIMARY KEY)")
        self.count = 0

    def add_batch(self, keys: Sequence[str]) -> list[int]:
        """Add keys; returns the positions in `keys` that were already present (or repeated in the batch)."""
        rows = [(hash(k),) for k in keys]
        db = self._db
        db.execute("SAVEPOINT batch")
        before = db.total_changes
        db.executemany("INSERT OR IGNORE INTO k VALUES (?)", rows)
        if db.total_changes - before == len(rows):
            db.execute("RELEASE batch")
            self.count += len(rows)
            return []
        db.execute("ROLLBACK TO batch")
        dups = []
        for i, row in enumerate(rows):
            if db.execute("INSERT OR IGNORE INTO k VALUES (?)", row).rowcount == 0:
                dups.append(i)
        db.execute("RELEASE batch")
        self.count += len(rows) - len(dups)
        return dups

    def contains_batch(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key was added (up to a hash collision, see the module docstring)."""
        hashes = [hash(k) for k in keys]
        found: set[int] = set()
        for start in range(0, len(hashes), 500):
            part = hashes[start : start + 500]
            marks = ",".join("?" * len(part))
            found.update(h for (h,) in self._db.execute(f"SELECT h FROM k WHERE h IN ({marks})", part))
        return [h in found for h in hashes]

    def close(self) -> None:
        self._db.close()
