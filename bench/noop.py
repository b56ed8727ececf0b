"""A diff and an apply of manifests unchanged since they were applied, against the full render and comparison.

    python bench/noop.py                        # 1,000,000 runs
    python bench/noop.py --sizes 200000,1000000 --repeat 3

For each size N, against one engine process (bench/submit.py's engine script, `--engine remote`) and a fresh SQLite
ledger: the first `apply manifests/bulk-parent.yaml --set count=N` (it records the manifest as applied), then, with
nothing changed, `diff` and `apply` (the manifest is skipped: the ledger's record of it holds and its fingerprint is
the record's) and the same with `--refresh` (rendered and compared with the ledger in full, as before records).
Each command runs as its own process, as a CI job runs it; every shortcut run must say that the manifest was
unchanged (and print the full run's summary), or the script fails. Prints wall seconds, the process's peak RSS
(ru_maxrss), the peak of its process tree's summed RSS (sampled every 100 ms: render workers included), the median
of `--repeat` runs of each, and the ratios. Before each, the engine is let finish its own work (it goes on
digesting a large apply for a while). The package is byte-compiled first, as an installed tool is (an
editable install run with PYTHONDONTWRITEBYTECODE would otherwise compile its sources on every start).

Goal: a no-op diff or apply under 1 s and 100 MB at 1,000,000 declared runs, on two cores.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apply import _sample_tree
from submit import engine_cpu_seconds, start_engine

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifests" / "bulk-parent.yaml"
NOTE = "1 manifest unchanged since applied"


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float, str, str]:
    """Wall seconds, peak RSS (MB), peak of the process tree (MB, sampled), stdout and stderr of one process."""
    os.sync()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        peaks: dict[str, float] = {}
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peaks, stop), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:5])} failed with exit code {proc.returncode}:\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, peaks.get("tree", 0.0), stdout, stderr


def wait_idle(pid: int, timeout: float = 600.0) -> None:
    """Until the engine process has been idle for a second (after an apply it still works through what it got):
    what is measured next should not share the cores with it."""
    deadline = time.monotonic() + timeout
    before = engine_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = engine_cpu_seconds(pid)
        if now - before < 0.05:
            return
        before = now


def run_size(n: int, repeat: int, tmp: Path) -> dict[str, tuple[float, float, float]]:
    base = tmp / str(n)
    base.mkdir()
    engine, token, address = start_engine(base / "engine.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_")}
    env.pop("CI", None)
    env.update(HATCHET_CLIENT_TOKEN=token, HATCHET_CLIENT_HOST_PORT=address, HATCHET_CLIENT_TLS_STRATEGY="none")
    common = ["--set", f"count={n}", "--max-runs", str(n), "--engine", "remote", "--state-dir", str(base / "state")]
    cli = [sys.executable, "-m", "hatchet_manifest"]
    results: dict[str, tuple[float, float, float]] = {}
    try:
        seconds, rss, tree, _, err = measure([*cli, "apply", str(MANIFEST), *common, "--yes"], env, tmp)
        results["first apply"] = (seconds, rss, tree)
        plans = {}
        for name, args in (
            ("diff", ["diff"]),
            ("diff --refresh", ["diff", "--refresh"]),
            ("apply", ["apply", "--yes"]),
            ("apply --refresh", ["apply", "--yes", "--refresh"]),
        ):
            times = []
            for _ in range(repeat if "refresh" not in name else 1):
                wait_idle(engine.pid)
                seconds, rss, tree, out, err = measure([*cli, args[0], str(MANIFEST), *common, *args[1:]], env, tmp)
                if ("refresh" in name) == (NOTE in err):
                    raise SystemExit(f"{name}: the shortcut was {'taken' if NOTE in err else 'not taken'}:\n{err}")
                times.append((seconds, rss, tree))
                plans[name] = re.sub(r" in \d+\.\ds\.$", "", out.strip())  # apply's report ends with its time
            results[name] = (
                statistics.median(t[0] for t in times),
                max(t[1] for t in times),
                max(t[2] for t in times),
            )
        for cmd in ("diff", "apply"):
            if plans[cmd] != plans[f"{cmd} --refresh"]:
                raise SystemExit(f"{cmd} printed {plans[cmd]!r}, the full one {plans[f'{cmd} --refresh']!r}")
    finally:
        assert engine.stdin is not None
        engine.stdin.close()
        engine.wait(timeout=60)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000", help="comma-separated run counts (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each shortcut command; the median is shown")
    ns = parser.parse_args()
    compileall.compile_dir(ROOT / "hatchet_manifest", quiet=1)
    compileall.compile_dir(ROOT / "sdk" / "hatchet_client", quiet=1)
    print(f"{'runs':>9} {'command':<16} {'seconds':>8} {'peak RSS MB':>12} {'tree peak MB':>13}")
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp:
        for n in (int(s) for s in ns.sizes.split(",")):
            results = run_size(n, ns.repeat, Path(tmp))
            for name, (seconds, rss, tree) in results.items():
                print(f"{n:>9} {name:<16} {seconds:>8.2f} {rss:>12.1f} {tree:>13.1f}")
            for cmd in ("diff", "apply"):
                fast, full = results[cmd][0], results[f"{cmd} --refresh"][0]
                print(
                    f"{n:>9} no-op {cmd}: {fast:.2f}s, {full / fast:.1f}x faster than rendering and comparing in full "
                    f"({full:.2f}s); peak RSS {results[cmd][1]:.0f} MB (goal: under 1 s and 100 MB)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
