"""How fast the ledger records, looks up and streams runs, on either backend.

    python bench/ledger.py                                   # SQLite in a temporary directory
    python bench/ledger.py --ledger postgresql://user@host/db --runs 1000000

Records RUNS runs for a fresh target the way `apply` does (record_pending, then record_submitted, per chunk),
then times lookups, streaming every entry, the state digest of every key and an export. On PostgreSQL it writes
to a target named after the time, and leaves the rows there.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from hatchet_manifest.ledger import Ledger, PendingRow, Target, open_ledger

DIGEST = "sha256:" + "ab" * 32


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def key(i: int) -> str:
    return f"nightly-backfill-{i:07d}"


def bench(ledger: Ledger, runs: int, chunk: int) -> None:
    target = Target(f"bench-{time.time_ns()}", "127.0.0.1:7070")
    print(f"ledger: {ledger.location}")

    start = time.perf_counter()
    pending = submitted = 0.0
    for first in range(0, runs, chunk):
        rows = [
            PendingRow(key(i), DIGEST, "nightly-backfill", "manifests/backfill.yaml")
            for i in range(first, min(first + chunk, runs))
        ]
        t0 = time.perf_counter()
        ledger.record_pending(target, rows)
        t1 = time.perf_counter()
        ledger.record_submitted(target, [(r.key, "run-" + r.key[-7:]) for r in rows])
        pending += t1 - t0
        submitted += time.perf_counter() - t1
    total = time.perf_counter() - start
    print(
        f"record {runs:,} runs in chunks of {chunk}: {total:.2f} s ({runs / total:,.0f} runs/s); "
        f"record_pending {pending:.2f} s, record_submitted {submitted:.2f} s"
    )

    rng = random.Random(7)
    times = []
    for _ in range(50):
        keys = [key(rng.randrange(runs)) for _ in range(chunk)]
        t0 = time.perf_counter()
        found = ledger.lookup(target, keys)
        times.append(time.perf_counter() - t0)
        assert len(found) == len(set(keys))
    print(
        f"lookup {chunk} random keys: median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
    )

    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    streamed = sum(1 for _ in ledger.entries(target))
    elapsed = time.perf_counter() - t0
    assert streamed == runs
    print(
        f"entries: {streamed:,} in {elapsed:.2f} s ({streamed / elapsed:,.0f}/s); "
        f"peak RSS {peak_rss_mb():.0f} MB (+{peak_rss_mb() - rss_before:.0f} MB while streaming)"
    )

    t0 = time.perf_counter()
    ledger.state_digest(target, (key(i) for i in range(runs)))
    print(f"state_digest over {runs:,} keys: {time.perf_counter() - t0:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", metavar="URL", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        with open_ledger(args.ledger, Path(tmp)) as ledger:
            bench(ledger, args.runs, args.chunk)
        if args.ledger is None:
            size = sum(p.stat().st_size for p in Path(tmp).iterdir() if p.is_file())
            print(f"SQLite files: {size / 2**20:.0f} MB ({size / args.runs:.0f} bytes per run)")


if __name__ == "__main__":
    main()
