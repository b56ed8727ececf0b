"""Bulk-trigger throughput and client memory: our client vs the official hatchet-sdk, into ONE engine process.

    python bench/submit.py                 # 100,000 runs per client
    python bench/submit.py --n 1000000     # a million
    python bench/submit.py --repeat 3      # median of 3 runs per client

The embedded engine runs in its own process (hatchet_client.engine.Engine on a temporary database). Each client
runs in its own subprocess that builds the same N runs as plain dicts (workflow BulkParent, input {"n": i},
two string metadata values), then times only the submission and reports its wall time and its peak RSS
(ru_maxrss, which includes the interpreter, the imports and the N input dicts, the same for every client) and
the CPU time it used while submitting (user + system, all threads: less sensitive than wall time to other load
on the machine); the engine's CPU time during each client's turn is measured too:

- official: hatchet-sdk's bulk API (`workflow.create_bulk_run_item` + `run_many(wait_for_result=False)`,
  which calls its AdminClient.run_workflows), input validator `dict[str, Any]`, TLS strategy none;
- ours-list: `Hatchet().admin.run_workflows(list_of_dicts)` (validated whole before sending);
- ours-stream: the same through a generator that makes each dict on demand (the runner's way: nothing held).

Every client's runs are counted in the engine's database afterwards. Prints runs/s, peak RSS and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CLIENTS = ("official", "ours-list", "ours-stream")

ENGINE_SCRIPT = """
import json, sys, threading
from hatchet_client.engine import Engine
engine = Engine(sys.argv[1], port=0).start()
print(json.dumps({"token": engine.token(), "address": engine.address}), flush=True)
sys.stdin.read()  # runs until the parent closes our stdin
engine.stop()
"""


def make_run(i: int, client: str) -> dict[str, Any]:
    return {
        "workflow_name": "BulkParent",
        "input": {"n": i},
        "options": {"additional_metadata": {"bulk-trigger": str(i), "client": client}},
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(client: str, n: int) -> dict[str, Any]:
    """Runs inside the client's subprocess; the token comes from HATCHET_CLIENT_TOKEN."""
    if client == "official":
        from hatchet_sdk import Hatchet as Official

        hatchet = Official()
        workflow = hatchet.workflow(name="BulkParent", input_validator=dict[str, Any])
        runs = [make_run(i, client) for i in range(n)]
        setup_rss = peak_rss_mb()
        cpu = cpu_seconds()
        start = time.perf_counter()
        items = [
            workflow.create_bulk_run_item(input=r["input"], additional_metadata=r["options"]["additional_metadata"])
            for r in runs
        ]
        refs = workflow.run_many(items, wait_for_result=False)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
        count = len(refs)
    else:
        from hatchet_client import Hatchet

        ours = Hatchet()
        if client == "ours-list":
            source: list[dict[str, Any]] | Iterator[dict[str, Any]] = [make_run(i, client) for i in range(n)]
        else:
            source = (make_run(i, client) for i in range(n))
        setup_rss = peak_rss_mb()
        cpu = cpu_seconds()
        start = time.perf_counter()
        refs_ours = ours.admin.run_workflows(source)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
        count = len(refs_ours)
        ours.close()
    return {
        "client": client,
        "runs": count,
        "seconds": seconds,
        "cpu": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "setup_rss_mb": setup_rss,
    }


def start_engine(db: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE_SCRIPT, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit("the engine did not start")
    info = json.loads(line)
    host, port = info["address"].rsplit(":", 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, info["token"], info["address"]


def count_runs(db: Path, client: str) -> int:
    from hatchet_client.engine import RunStore

    return sum(1 for _ in RunStore(db).list_runs(workflow="BulkParent", metadata={"client": client}))


def engine_cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="runs per client (default 100000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per client; the median is reported")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS))
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return 0

    clients = [c for c in args.clients.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "engine.db"
        engine, token, address = start_engine(db)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
        env |= {"HATCHET_CLIENT_TOKEN": token, "HATCHET_CLIENT_TLS_STRATEGY": "none"}
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
        try:
            for rep in range(args.repeat):
                for client in clients:
                    before = engine_cpu_seconds(engine.pid)
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", client, "--n", str(args.n)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if out.returncode != 0:
                        print(out.stderr, file=sys.stderr)
                        raise SystemExit(f"{client} failed (exit {out.returncode})")
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    result["engine_cpu"] = engine_cpu_seconds(engine.pid) - before
                    results[client].append(result)
                    print(
                        f"[{rep + 1}/{args.repeat}] {client}: {result['runs']} runs in {result['seconds']:.2f}s, "
                        f"client CPU {result['cpu']:.2f}s, peak RSS {result['peak_rss_mb']:.0f} MB, "
                        f"engine CPU {result['engine_cpu']:.2f}s",
                        file=sys.stderr,
                    )
            stored = {c: count_runs(db, c) for c in clients}
        finally:
            assert engine.stdin is not None
            engine.stdin.close()
            try:
                engine.wait(timeout=30)
            except subprocess.TimeoutExpired:
                engine.send_signal(signal.SIGKILL)
                engine.wait()

    print(f"{args.n} runs per client, median of {args.repeat}, engine at {address}")
    print(
        f"{'client':<13} {'runs/s':>10} {'seconds':>8} {'client CPU s':>13} {'engine CPU s':>13} "
        f"{'peak RSS MB':>12} {'setup RSS MB':>13} {'stored':>9}"
    )
    summary: dict[str, tuple[float, float, float]] = {}
    for client in clients:
        rows = results[client]
        seconds = statistics.median(r["seconds"] for r in rows)
        rss = statistics.median(r["peak_rss_mb"] for r in rows)
        setup = statistics.median(r["setup_rss_mb"] for r in rows)
        cpu = statistics.median(r["cpu"] for r in rows)
        engine_cpu = statistics.median(r["engine_cpu"] for r in rows)
        summary[client] = (args.n / seconds, rss, cpu)
        print(
            f"{client:<13} {args.n / seconds:>10.0f} {seconds:>8.2f} {cpu:>13.2f} {engine_cpu:>13.2f} "
            f"{rss:>12.0f} {setup:>13.0f} {stored[client]:>9}"
        )
        if stored[client] != args.n * args.repeat:
            print(f"  ! the engine stored {stored[client]} runs for {client}, expected {args.n * args.repeat}")
    if "official" in summary:
        base_rate, base_rss, base_cpu = summary["official"]
        for client in clients:
            if client != "official":
                rate, rss, cpu = summary[client]
                print(
                    f"{client} / official: throughput x{rate / base_rate:.2f}, peak RSS x{rss / base_rss:.2f}, "
                    f"client CPU x{cpu / base_cpu:.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
