"""A set of run keys whose memory stays small for millions of keys.

A Python set of a million keys costs ~70 MB; this keeps 64-bit hashes in an in-memory SQLite B-tree
(about 15 bytes a key) and checks a whole batch per call. Keys are compared by Python's 64-bit SipHash
of the text: for a million keys the chance of a false duplicate is about 3e-8.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
import sqlite3
from array import array
from collections.abc import Sequence

import orjson

from hatchet_manifest.manifest.sqlbatch import select_in


class KeySet:
    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", isolation_level=None)
        self._db.execute("CREATE TABLE k (h INTEGER PRIMARY KEY)")
        self._db.execute("BEGIN")  # one transaction for the set's life: nothing is ever committed

    def add_batch(self, keys: Sequence[str]) -> list[int]:
        """Add keys; returns the positions in `keys` that were already present (or repeated in the batch)."""
        hashes = list(map(hash, keys))
        db = self._db
        db.execute("SAVEPOINT batch")
        before = db.total_changes
        # One statement for the batch (sorted: the B-tree is walked in order), not one per key.
        db.execute("INSERT OR IGNORE INTO k SELECT value FROM json_each(?)", (orjson.dumps(sorted(hashes)),))
        if db.total_changes - before == len(hashes):
            db.execute("RELEASE batch")
            return []
        db.execute("ROLLBACK TO batch")
        dups = []
        for i, h in enumerate(hashes):
            if db.execute("INSERT OR IGNORE INTO k VALUES (?)", (h,)).rowcount == 0:
                dups.append(i)
        db.execute("RELEASE batch")
        return dups

    def contains_batch(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key was added (up to a hash collision, see the module docstring)."""
        hashes = [hash(k) for k in keys]
        found = {h for (h,) in select_in(self._db, "SELECT h FROM k WHERE h IN ({marks})", hashes)}
        return [h in found for h in hashes]

    def close(self) -> None:
        self._db.close()


class KeyLog:
    """Keys checked unique once all are in, for a caller that can wait for the answer (a parallel apply: nothing
    is sent before the end of its first pass anyway). Adding is appending 64-bit hashes to an array (8 bytes a
    key, no per-key work in Python); `duplicates` sorts them, in slices of at most SLICE hashes so that the
    sort's temporary list stays under ~40 MB, and merges the slices. Same hash as KeySet."""

    SLICE = 1 << 20

    def __init__(self) -> None:
        self._hashes = array("q")
        self._sorted: list[array[int]] | None = None

    def add_batch(self, keys: Sequence[str]) -> None:
        if self._sorted is not None:
            raise RuntimeError("KeyLog: add_batch after duplicates()")
        self._hashes.extend(map(hash, keys))

    def duplicates(self) -> int:
        """How many keys repeat one added before (up to a hash collision); ends the adding."""
        if self._sorted is None:
            hashes, self._hashes = self._hashes, array("q")
            self._sorted = []
            while hashes:  # sort the tail slice and drop it from the array: memory never doubles
                self._sorted.append(array("q", sorted(hashes[-self.SLICE :])))
                del hashes[-self.SLICE :]
        runs = self._sorted
        merged = runs[0] if len(runs) == 1 else heapq.merge(*runs)  # the merge: ~0.3 µs a key, past a slice
        return sum(itertools.starmap(operator.eq, itertools.pairwise(merged)))

    def contains_batch(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key was added (after `duplicates`)."""
        if self._sorted is None:
            self.duplicates()
        assert self._sorted is not None
        out = []
        for h in map(hash, keys):
            found = False
            for run in self._sorted:
                i = bisect.bisect_left(run, h)
                if i < len(run) and run[i] == h:
                    found = True
                    break
            out.append(found)
        return out

    def close(self) -> None:
        self._hashes = array("q")
        self._sorted = None
