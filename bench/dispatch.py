"""Dispatch throughput: N no-op tasks through ONE official hatchet-sdk worker (a real process) with S slots.

    python bench/dispatch.py [--n 10000] [--slots 100]

The engine runs in this process; the worker (tests/engine/worker_app.py, its `Noop` task) in its own process group.
Prints tasks/s (first trigger to last outcome recorded), the CPU seconds of the engine and of the worker processes
over the run (their ratio says which one is the bottleneck), and the peak RSS of each.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from hatchet_client._proto import workflows_pb2, workflows_pb2_grpc
from hatchet_client._proto.v1 import trigger_pb2
from hatchet_client.engine import Engine, RunFilter

ROOT = Path(__file__).resolve().parent.parent
WORKER_APP = ROOT / "tests" / "engine" / "worker_app.py"
TICKS = os.sysconf("SC_CLK_TCK")


def group_stats(pgid: int) -> tuple[float, int]:
    """(CPU seconds, sum of peak RSS in KiB) of the live processes of a process group."""
    cpu, rss = 0.0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            cpu += (int(fields[11]) + int(fields[12])) / TICKS
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    rss += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while it was read
    return cpu, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=100)
    ns = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    (tmp / "markers").mkdir()
    with Engine(tmp / "engine.db", port=0) as engine:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
        env.update(HATCHET_CLIENT_TOKEN=engine.token(), HATCHET_CLIENT_TLS_STRATEGY="none")
        log = (tmp / "worker.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, str(WORKER_APP), "bench", str(ns.slots), str(tmp / "markers")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "Noop" not in engine.known_workflows() or not engine.store.read(
                lambda c: c.execute("SELECT 1 FROM workers WHERE status = 'ACTIVE'").fetchone()
            ):
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit(f"the worker did not register (see {tmp / 'worker.log'})")
                time.sleep(0.2)
            time.sleep(2)  # let the worker's listener settle before the clock starts
            engine_cpu0 = sum(os.times()[:2])
            worker_cpu0, _ = group_stats(worker.pid)
            start = time.perf_counter()
            auth = (("authorization", f"bearer {engine.token()}"),)
            with grpc.insecure_channel(engine.address) as channel:
                stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
                for low in range(0, ns.n, 1000):
                    items = [
                        trigger_pb2.TriggerWorkflowRequest(name="Noop", input="{}")
                        for _ in range(low, min(ns.n, low + 1000))
                    ]
                    stub.BulkTriggerWorkflow(
                        workflows_pb2.BulkTriggerWorkflowRequest(workflows=items), metadata=auth, timeout=60
                    )
            done = RunFilter(workflow="Noop", statuses=["COMPLETED"])
            deadline = time.monotonic() + 600
            while engine.store.count(done) < ns.n:
                if time.monotonic() > deadline:
                    raise SystemExit("the tasks did not finish within 10 minutes")
                time.sleep(0.1)
            elapsed = time.perf_counter() - start
            engine_cpu = sum(os.times()[:2]) - engine_cpu0
            worker_cpu, worker_rss = group_stats(worker.pid)
            worker_cpu -= worker_cpu0
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
            log.close()
    engine_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{ns.n} no-op tasks, one official worker with {ns.slots} slots, {os.cpu_count()} CPUs")
    print(f"  {ns.n / elapsed:,.0f} tasks/s ({elapsed:.1f} s, first trigger to last outcome recorded)")
    print(
        f"  CPU: engine {engine_cpu:.1f} s, worker {worker_cpu:.1f} s (engine/worker {engine_cpu / max(worker_cpu, 1e-9):.2f})"
    )
    print(f"  peak RSS: engine {engine_rss / 1024:.0f} MB, worker processes {worker_rss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
