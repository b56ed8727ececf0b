"""A whole apply vs bare submission, into the same kind of engine process, in one run.

    python bench/apply.py                 # 100,000 runs
    python bench/apply.py --n 1000000     # a million

- bare: our client's `run_workflows` over a generator of N BulkParent runs (what bench/submit.py calls
  ours-stream): no rendering, no ledger;
- apply: `hatchet-manifest apply manifests/bulk-parent.yaml --set count=N --yes --engine remote` with a fresh
  SQLite ledger: render + validate everything (spooled), plan against the ledger, submit with write-ahead
  records, stamps on every run.

Each runs as its own subprocess against its own engine process (bench/submit.py's engine script). Prints wall
time, runs/s, the client's peak RSS (ru_maxrss), the peak of the summed RSS of the client and its worker
processes and of the largest worker (sampled every 100 ms: often enough for memory that grows over seconds,
rarely enough not to slow what it measures), and the ratios. Before each run the page cache is written back
(os.sync), so that one run does not pay for the disk writes of the one before. Goal: a 1,000,000-run apply
under 300 MB RSS and within a factor of 2 of bare submission.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from submit import start_engine

ROOT = Path(__file__).resolve().parent.parent
BARE = """
import sys
from hatchet_client import Hatchet
n = int(sys.argv[1])
runs = ({"workflow_name": "BulkParent", "input": {"n": i},
         "options": {"additional_metadata": {"bulk-trigger": str(i), "hello-%d" % i: "earth-%d" % i}}} for i in range(n))
refs = Hatchet().admin.run_workflows(runs)
assert len(refs) == n
"""


def _sample_tree(pid: int, peaks: dict[str, float], stop: threading.Event) -> None:
    """Peak of the summed RSS of a process and its descendants (the parallel apply's workers), and the largest
    descendant's, sampled every 100 ms: often enough for memory that grows over seconds, rarely enough not to slow what it measures (ru_maxrss of the child does not include its own children)."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            own = root.memory_info().rss
            kids = []
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    kids.append(child.memory_info().rss)
        except psutil.Error:
            return
        peaks["tree"] = max(peaks.get("tree", 0.0), (own + sum(kids)) / 2**20)
        peaks["worker"] = max(peaks.get("worker", 0.0), max(kids, default=0) / 2**20)
        stop.wait(0.1)


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, dict[str, float]]:
    """Wall seconds and peak RSS (MB) of one child process; peaks of its process tree (sampled)."""
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    peaks: dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peaks, stop), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024, peaks


def run(mode: str, n: int, tmp: Path, extra: list[str]) -> tuple[float, float, dict[str, float]]:
    db = tmp / mode / "engine.db"
    db.parent.mkdir(parents=True)
    engine, token, address = start_engine(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_")}
    env.pop("CI", None)
    env.update(HATCHET_CLIENT_TOKEN=token, HATCHET_CLIENT_HOST_PORT=address, HATCHET_CLIENT_TLS_STRATEGY="none")
    try:
        if mode == "bare":
            cmd = [sys.executable, "-c", BARE, str(n)]
        else:
            cmd = [
                sys.executable,
                "-m",
                "hatchet_manifest",
                "apply",
                str(ROOT / "manifests" / "bulk-parent.yaml"),
                "--set",
                f"count={n}",
                "--max-runs",
                str(n),
                "--yes",
                "--engine",
                "remote",
                "--state-dir",
                str(tmp / mode / "state"),
                *extra,
            ]
        seconds, rss, peaks = measure(cmd, env, tmp)
    finally:
        assert engine.stdin is not None
        engine.stdin.close()
        engine.wait(timeout=60)
    from hatchet_client.engine import RunStore

    store = RunStore(db)
    try:
        stored = store.count()
    finally:
        store.close()
    if stored != n:
        raise SystemExit(f"{mode}: the engine holds {stored} runs, not {n}")
    return seconds, rss, peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=0, help="apply --workers (0: auto; 1: serial)")
    ns = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        for mode in ("bare", "apply"):
            results[mode] = run(mode, ns.n, Path(tmp), ["--workers", str(ns.workers)])
    print(
        f"{'mode':<6} {'runs':>9} {'seconds':>8} {'runs/s':>9} {'peak RSS MB':>12} {'tree peak MB':>13} "
        f"{'worker peak MB':>15}"
    )
    for mode, (seconds, rss, peaks) in results.items():
        print(
            f"{mode:<6} {ns.n:>9} {seconds:>8.2f} {ns.n / seconds:>9.0f} {rss:>12.1f} "
            f"{peaks.get('tree', 0):>13.1f} {peaks.get('worker', 0):>15.1f}"
        )
    slow = results["apply"][0] / results["bare"][0]
    total = max(results["apply"][1], results["apply"][2].get("tree", 0))
    print(
        f"apply takes {slow:.2f}x the time of bare submission (goal <= 2); peak RSS {total:.0f} MB with its "
        "workers (goal < 300)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
