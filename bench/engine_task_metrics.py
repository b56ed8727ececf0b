"""How fast the embedded engine answers REST task-metrics (runs per status) over a large store.

    python bench/engine_task_metrics.py [--runs 1000000] [--repeat 5] [--db PATH]

Builds a database of N runs (through the engine's own writer, then indexed), gives each a dispatch state (QUEUED,
RUNNING, COMPLETED, FAILED or CANCELLED, at random: what the scheduler would have written for a workflow with a
version), then serves it with the engine and times `GET .../task-metrics` over HTTP: every run,
one manifest stamp whose runs are contiguous (90% of them), a stamp on every other chunk of 1,000 runs (half), a
stamp on every other run (half, the worst layout), one workflow, and one single run. Prints the median and the
slowest of `--repeat` requests each. With `--db`, an existing benchmark database is reused (building 1M runs takes
about a minute).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from hatchet_client.engine import Engine
from hatchet_client.engine.dispatch.definitions import TaskDef, WorkflowDef
from hatchet_client.engine.schema import connect, init_database, iso_utc
from hatchet_client.engine.store import workflow_id
from hatchet_client.engine.writer import RunWriter

WORKFLOW = "bench_Metrics"
STATUSES = ["QUEUED", "RUNNING", "COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "CANCELLED"]


def build(path: Path, runs: int) -> None:
    init_database(path)
    writer = RunWriter(path, synchronous="OFF")
    writer.start()
    try:
        for start in range(0, runs, 20_000):
            rows = []
            for i in range(start, min(runs, start + 20_000)):
                meta = {
                    "hatchet-manifest/key": f"nightly/run-{i}",
                    "hatchet-manifest/manifest": "manifests/a.yaml" if i < runs * 9 // 10 else "manifests/b.yaml",
                    "chunk": f"c{i // 1000 % 2}",
                    "parity": f"p{i % 2}",
                }
                rows.append((str(uuid.uuid4()), WORKFLOW, json.dumps({"n": i}), json.dumps(meta), None))
            writer.write(rows)
        writer.index_now()
    finally:
        writer.close()
    task = TaskDef("run", f"{WORKFLOW}:run", (), 0, None, None, 60.0, 300.0)
    definition = WorkflowDef(WORKFLOW, (task,), None, 1, ())
    random.seed(1)
    conn = connect(path, synchronous="OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO workflow_versions (version_id, name, digest, definition, created_at) VALUES (?, ?, ?, ?, ?)",
            ("0b6f0d5e-0000-4000-8000-000000000001", WORKFLOW, definition.digest(), definition.to_json(), iso_utc(0)),
        )
        conn.executemany(
            "INSERT INTO run_state (seq, version_id, status) VALUES (?, '0b6f0d5e-0000-4000-8000-000000000001', ?)",
            ((seq, random.choice(STATUSES)) for seq in range(1, runs + 1)),
        )
        conn.execute("UPDATE dispatch_state SET materialized_upto = ?", (runs,))  # the scheduler has nothing to do
        conn.execute("COMMIT")
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "engine.db"
        if not path.exists():
            started = time.perf_counter()
            build(path, args.runs)
            print(f"built {args.runs:,} runs in {time.perf_counter() - started:.1f} s")
        with Engine(path, port=0) as engine:
            base = (
                f"{engine.server_url}/api/v1/stable/tenants/{engine.tenant_id}/task-metrics?since=2000-01-01T00:00:00Z"
            )
            headers = {"Authorization": f"Bearer {engine.token()}"}
            cases = {
                "every run": [],
                "one stamp, 90% of the runs, contiguous": [
                    ("additional_metadata", "hatchet-manifest/manifest:manifests/a.yaml")
                ],
                "one stamp, every other chunk of 1000 runs": [("additional_metadata", "chunk:c0")],
                "one stamp, every other run": [("additional_metadata", "parity:p0")],
                "one workflow": [("workflow_ids", workflow_id(engine.tenant_id, WORKFLOW))],
                "one run": [("additional_metadata", "hatchet-manifest/key:nightly/run-77")],
            }
            for label, params in cases.items():
                url = base + ("&" + urllib.parse.urlencode(params) if params else "")
                seconds = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp:
                        counts = {row["status"]: row["count"] for row in json.load(resp)}
                    seconds.append(time.perf_counter() - started)
                print(
                    f"task-metrics, {label}: median {statistics.median(seconds) * 1000:.0f} ms,"
                    f" slowest {max(seconds) * 1000:.0f} ms ({sum(counts.values()):,} runs: {counts})"
                )
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
