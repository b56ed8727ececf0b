"""Run counts per status for the REST task-metrics, as Hatchet's GetTenantStatusMetrics counts them: one per RUN
(a row of v1_runs_olap / v1_statuses_olap), created in [since, until], optionally of some workflows and with ANY
of some metadata pairs (OR; a pair matches a string value, as the engine's lookup table holds them).

The runs created in a time range are a `seq` range (`commits`), without gaps (the writer checks it), so a range's
run count is its length. A run without a run_state row (its workflow has no version, or the scheduler has not
reached it yet) is QUEUED. Counting is done by SQLite over indexes, never by reading rows into Python:
- no filter: per status, a range count on `run_state_status (status, seq)`; QUEUED is the rest of the range;
- workflows only: per status, range counts on `run_state_version (version_id, status, seq)` for their versions,
  plus the runs the scheduler has not reached (a scan of that tail only) and, for a name without a version, a scan
  of the range (all its runs are QUEUED);
- one metadata pair: the lookup table's buckets (schema.py) that the pair covers whole are counted like the
  unfiltered range; the other buckets and the not yet indexed tail are joined to run_state row by row;
- several pairs, or pairs and workflows: the matching runs (each counted once) joined to run_state row by row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from hatchet_client.engine.schema import BUCKET_BITS

STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")
_STARTED = ("RUNNING", "COMPLETED", "CANCELLED", "FAILED")  # the statuses besides QUEUED
_NO_SEQ = 9223372036854775807
_VALUES = "(VALUES " + ", ".join(f"('{status}')" for status in _STARTED) + ") v"
_RANGE_COUNTS = (
    "SELECT v.column1, (SELECT count(*) FROM run_state s INDEXED BY run_state_status"
    f" WHERE s.status = v.column1 AND s.seq BETWEEN ?1 AND ?2) FROM {_VALUES}"
)
_SUMS = "count(*), " + ", ".join(f"sum(s.status = '{status}')" for status in _STARTED)
Counts = dict[str, int]


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seq_range(conn: sqlite3.Connection, since: datetime, until: datetime | None) -> tuple[int, int]:
    """(first, last) seq of the runs received in [since, until] (first > last: none)."""
    low = conn.execute(
        "SELECT coalesce(min(first_seq), ?) FROM commits WHERE received_at >= ?", (_NO_SEQ, _utc_text(since))
    ).fetchone()[0]
    if until is None:
        high = conn.execute("SELECT coalesce(max(seq), 0) FROM runs").fetchone()[0]
    else:
        high = conn.execute(
            "SELECT coalesce(max(last_seq), 0) FROM commits WHERE received_at <= ?", (_utc_text(until),)
        ).fetchone()[0]
    return int(low), int(high)


def status_counts(
    conn: sqlite3.Connection,
    since: datetime,
    until: datetime | None = None,
    workflow_names: Sequence[str] | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> Counts:
    """How many runs of each status (every one of STATUSES, in that order) match. Call it in a read transaction."""
    counts = dict.fromkeys(STATUSES, 0)
    low, high = seq_range(conn, since, until)
    if low > high or (workflow_names is not None and not workflow_names):
        return counts
    if not metadata:
        if workflow_names is None:
            _add(counts, _range_counts(conn, low, high))
        else:
            _add(counts, _workflow_counts(conn, low, high, workflow_names))
        return counts
    indexed_upto = int(conn.execute("SELECT indexed_upto FROM index_state").fetchone()[0])
    whole: list[int] = []
    if workflow_names is None and len(metadata) == 1 and low <= indexed_upto:
        whole = _whole_buckets(conn, low, min(high, indexed_upto), metadata[0])
        for start, end in _spans(whole):
            _add(counts, _range_counts(conn, max(low, start << BUCKET_BITS), min(high, ((end + 1) << BUCKET_BITS) - 1)))
    source, params = _matching(low, high, indexed_upto, whole, workflow_names, metadata)
    _add(counts, _joined_counts(conn, source, params))
    return counts


def _add(counts: Counts, more: Counts) -> None:
    for status, n in more.items():
        counts[status] += n


def _range_counts(conn: sqlite3.Connection, low: int, high: int) -> Counts:
    """Every run of the seq range [low, high], by status (index range counts)."""
    counts = {status: int(n) for status, n in conn.execute(_RANGE_COUNTS, (low, high))}
    counts["QUEUED"] = high - low + 1 - sum(counts.values())
    return counts


def _joined_counts(conn: sqlite3.Connection, source: str, params: list[Any]) -> Counts:
    """The runs whose seq `source` selects (each once), by status, joined to run_state by primary key."""
    total, *started = (
        int(n or 0)
        for n in conn.execute(
            f"SELECT {_SUMS} FROM ({source}) m LEFT JOIN run_state s ON s.seq = m.seq", params
        ).fetchone()
    )
    counts = dict(zip(_STARTED, started, strict=True))
    counts["QUEUED"] = total - sum(started)
    return counts


def _workflow_counts(conn: sqlite3.Connection, low: int, high: int, names: Sequence[str]) -> Counts:
    """The runs of these workflows in [low, high], by status."""
    marks = ",".join("?" * len(names))
    versions = [
        row[0] for row in conn.execute(f"SELECT version_id FROM workflow_versions WHERE name IN ({marks})", names)
    ]
    versioned = {
        row[0] for row in conn.execute(f"SELECT DISTINCT name FROM workflow_versions WHERE name IN ({marks})", names)
    }
    counts = dict.fromkeys(STATUSES, 0)
    if versions:
        vmarks = ",".join("?" * len(versions))
        rows = conn.execute(
            "SELECT v.column1, (SELECT count(*) FROM run_state s INDEXED BY run_state_version WHERE"
            f" s.version_id IN ({vmarks}) AND s.status = v.column1 AND s.seq BETWEEN ? AND ?)"
            f" FROM (VALUES ('QUEUED'), {_VALUES.removeprefix('(VALUES ')}",
            [*versions, low, high],
        )
        counts.update({status: int(n) for status, n in rows})
    upto = int(conn.execute("SELECT materialized_upto FROM dispatch_state").fetchone()[0])
    # Runs the scheduler has not reached are QUEUED (a short tail); so is every run of a name without a version.
    tail = conn.execute(
        f"SELECT count(*) FROM runs WHERE seq BETWEEN ? AND ? AND workflow_name IN ({marks})",
        (max(low, upto + 1), high, *names),
    ).fetchone()[0]
    received = {row[0] for row in conn.execute(f"SELECT name FROM workflows WHERE name IN ({marks})", names)}
    unversioned = [name for name in names if name in received and name not in versioned]
    if unversioned:
        tail += conn.execute(
            f"SELECT count(*) FROM runs WHERE seq BETWEEN ? AND ? AND workflow_name IN ({','.join('?' * len(unversioned))})",
            (low, min(high, upto), *unversioned),
        ).fetchone()[0]
    counts["QUEUED"] += int(tail)
    return counts


def _whole_buckets(conn: sqlite3.Connection, low: int, high: int, pair: tuple[str, str]) -> list[int]:
    """The lookup buckets within [low, high] in which every run has the pair (a count per bucket, from the index)."""
    first, last = low >> BUCKET_BITS, high >> BUCKET_BITS
    rows = conn.execute(
        f"SELECT bucket, count(*) FROM run_metadata WHERE bucket IN ({_numbers(first, last)}) AND key = ? AND value = ?"
        " AND seq BETWEEN ? AND ? GROUP BY bucket",
        (*pair, low, high),
    )
    size = 1 << BUCKET_BITS
    return [bucket for bucket, n in rows if n == min(high, (bucket + 1) * size - 1) - max(low, bucket * size) + 1]


def _spans(buckets: list[int]) -> Iterable[tuple[int, int]]:
    """Consecutive buckets merged: [1, 2, 3, 7] -> (1, 3), (7, 7)."""
    start = prev = None
    for bucket in buckets:
        if start is None or prev is None or bucket != prev + 1:
            if start is not None and prev is not None:
                yield start, prev
            start = bucket
        prev = bucket
    if start is not None and prev is not None:
        yield start, prev


def _numbers(first: int, last: int) -> str:
    return ",".join(str(n) for n in range(first, last + 1))


def _matching(
    low: int,
    high: int,
    indexed_upto: int,
    skip: list[int],
    workflow_names: Sequence[str] | None,
    metadata: Sequence[tuple[str, str]],
) -> tuple[str, list[Any]]:
    """SQL selecting, once each, the seq of the runs in [low, high] with any of the pairs (and of one of the
    workflows), leaving out the lookup buckets in `skip` (counted already); and its parameters."""
    params: list[Any] = []
    parts = []
    top = min(high, indexed_upto)
    skipped = set(skip)
    buckets = [b for b in range(low >> BUCKET_BITS, (top >> BUCKET_BITS) + 1) if b not in skipped]
    if low <= top and buckets:  # the indexed part: each pair probes the buckets of the range only
        listed = ",".join(map(str, buckets))
        for i, (key, value) in enumerate(metadata):
            # A run with several of the pairs is counted under the first one only (a probe per earlier pair).
            earlier = "".join(
                " AND NOT EXISTS (SELECT 1 FROM run_metadata e WHERE e.bucket = m.bucket AND e.key = ? AND e.value = ?"
                " AND e.seq = m.seq)"
                for _ in metadata[:i]
            )
            parts.append(
                f"SELECT m.seq FROM run_metadata m WHERE m.bucket IN ({listed}) AND m.key = ? AND m.value = ?"
                f" AND m.seq BETWEEN ? AND ?{earlier}"
            )
            params += [key, value, low, top]
            for other in metadata[:i]:
                params += list(other)
    if high > indexed_upto:  # the tail the writer has not indexed yet
        any_pair = " OR ".join("(j.key = ? AND j.value = ?)" for _ in metadata)
        parts.append(
            "SELECT r2.seq FROM runs r2 WHERE r2.seq BETWEEN ? AND ? AND EXISTS (SELECT 1 FROM"
            f" json_each(r2.additional_metadata) j WHERE j.type = 'text' AND ({any_pair}))"
        )
        params += [max(low, indexed_upto + 1), high]
        for pair in metadata:
            params += list(pair)
    if not parts:
        return "SELECT 0 AS seq WHERE 0", []
    source = " UNION ALL ".join(parts)
    if workflow_names is not None:
        marks = ",".join("?" * len(workflow_names))
        source = f"SELECT m2.seq FROM ({source}) m2 JOIN runs r3 ON r3.seq = m2.seq WHERE r3.workflow_name IN ({marks})"
        params += list(workflow_names)
    return source, params
