"""Following runs: `status` of a large manifest, and `status --watch` following runs to the end.

    python bench/watch.py [--status-runs 1000000] [--follow-runs 100000] [--slots 100]

1. `status`: a manifest of --status-runs runs is applied to an embedded engine (served in this process, no
   worker: the runs stay queued); then `hatchet-manifest status` runs 3 times as a real process; prints the
   wall time of each (start-up included) and the requests it made.
2. following: a manifest of --follow-runs `Noop` runs is applied while one official hatchet-sdk worker (a real
   process, tests/engine/worker_app.py) runs them; `status --watch -o json` follows them to the end; prints its
   wall time, its peak RSS (sampled from /proc) and the requests it made. The engine runs about 120 tasks a
   second on two cores, so 100,000 runs take about 14 minutes: pass a smaller --follow-runs for a quick figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from hatchet_client.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
WORKER_APP = ROOT / "tests" / "engine" / "worker_app.py"


def manifest(path: Path, name: str, workflow: str, count: int) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: hatchet-manifest/v1
            kind: TriggerManifest
            metadata: {{name: {name}}}
            runs:
              - workflow_name: {workflow}
                for_each: "{{{{ range({count}) }}}}"
                as: i
                key: "{name}-{{{{ i }}}}"
            """
        )
    )
    return path


def cli(env: dict[str, str], *args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hatchet_manifest", *args, "--engine", "remote"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def apply(env: dict[str, str], path: Path, count: int) -> None:
    started = time.monotonic()
    proc = cli(env, "apply", str(path), "--yes", "--max-runs", str(count))
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"apply failed: {err[-2000:]}")
    print(f"  applied {count:,} runs in {time.monotonic() - started:.1f}s")


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass  # it ended between two samples: the last sample stands
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status-runs", type=int, default=1_000_000)
    parser.add_argument("--follow-runs", type=int, default=100_000)
    parser.add_argument("--slots", type=int, default=100)
    ns = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    with Engine(tmp / "engine.db", port=0) as engine:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
        env.update(
            HATCHET_CLIENT_TOKEN=engine.token(),
            HATCHET_CLIENT_TLS_STRATEGY="none",
            HATCHET_MANIFEST_STATE_DIR=str(tmp / "state"),
        )
        if ns.status_runs:
            print(f"status of one manifest of {ns.status_runs:,} runs (queued, no worker):")
            big = manifest(tmp / "big.yaml", "big", "Anything", ns.status_runs)
            apply(env, big, ns.status_runs)
            for _ in range(3):
                started = time.monotonic()
                proc = cli(env, "status", str(big), "-o", "json")
                out, _ = proc.communicate()
                wall = time.monotonic() - started
                doc = json.loads(out)
                print(
                    f"  status: {wall:.2f}s wall (exit {proc.returncode}), queued {doc['total']['queued']:,}, "
                    f"{doc['requests']} request(s)"
                )
        if ns.follow_runs:
            print(f"following {ns.follow_runs:,} Noop runs to the end, one worker with {ns.slots} slots:")
            (tmp / "markers").mkdir()
            worker = subprocess.Popen(
                [sys.executable, str(WORKER_APP), "bench", str(ns.slots), str(tmp / "markers")],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                runs = manifest(tmp / "follow.yaml", "follow", "Noop", ns.follow_runs)
                apply(env, runs, ns.follow_runs)
                started = time.monotonic()
                proc = cli(env, "status", str(runs), "--watch", "-o", "json")
                peak = 0
                while proc.poll() is None:
                    peak = max(peak, peak_rss_kib(proc.pid))
                    time.sleep(0.2)
                out, _ = proc.communicate()
                wall = time.monotonic() - started
                doc = json.loads(out)
                print(
                    f"  status --watch: {wall:.1f}s to the end (exit {proc.returncode}), completed "
                    f"{doc['total']['completed']:,}, peak RSS {peak / 1024:.0f} MB, {doc['requests']} request(s) "
                    f"({doc['requests'] / max(wall, 1e-9):.2f}/s)"
                )
            finally:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
