"""Benchmark: render + validate the BulkParent manifest scaled with --set count=N.

Each measurement runs in its own process so that peak RSS is that of one render:
- "library": iterate hatchet_manifest.render(...) (render + validate, no output);
- "cli jsonl": `hatchet-manifest render -o jsonl` streamed to /dev/null.

Usage: python bench/render.py [--sizes 100000,1000000]
Goal on a 2-core machine: >= 100,000 runs/s rendered and validated; 1,000,000 runs as jsonl in < 150 MB RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifests" / "bulk-parent.yaml"


def library(n: int) -> dict[str, float]:
    import hatchet_manifest as hm

    start = time.perf_counter()
    manifests = hm.load([MANIFEST])
    runs = hm.render(manifests, hm.Values(set=[f"count={n}"]), hm.Limits(max_runs=n))
    count = sum(1 for _ in runs)
    elapsed = time.perf_counter() - start
    assert count == n, count
    return {"runs": count, "seconds": elapsed, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def cli_jsonl(n: int) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "hatchet_manifest",
        "render",
        str(MANIFEST),
        "--set",
        f"count={n}",
        "--max-runs",
        str(n),
        "-o",
        "jsonl",
    ]
    start = time.perf_counter()
    with open("/dev/null", "w") as sink:
        subprocess.run(cmd, stdout=sink, check=True)
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"runs": n, "seconds": elapsed, "rss_mb": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        mode, n = ns.child[0], int(ns.child[1])
        print(json.dumps(library(n) if mode == "library" else cli_jsonl(n)))
        return 0
    print(f"{'mode':<10} {'runs':>9} {'seconds':>8} {'runs/s':>9} {'peak RSS MB':>12}")
    results = {}
    for n in (int(s) for s in ns.sizes.split(",")):
        for mode in ("library", "cli-jsonl"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(n)], capture_output=True, text=True, check=True
            )
            r = json.loads(out.stdout)
            results[(mode, n)] = r
            print(f"{mode:<10} {n:>9} {r['seconds']:>8.2f} {n / r['seconds']:>9.0f} {r['rss_mb']:>12.1f}")
    sizes = sorted({n for _, n in results})
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        for mode in ("library", "cli-jsonl"):
            ratio = results[(mode, hi)]["rss_mb"] / results[(mode, lo)]["rss_mb"]
            print(f"{mode}: RSS at {hi} / RSS at {lo} = {ratio:.2f} (flat memory is ~1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
