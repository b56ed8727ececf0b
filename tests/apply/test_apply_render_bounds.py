"""diff (and its --base render) and apply (serial, and its parallel workers) render under the same bounds as
validate and render: a hog stops with exit 1, the file and entry named, nothing sent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.apply.conftest import engine_runs
from tests.conftest import RunCli
from tests.manifest.test_render_bounds import CPU_HOG, MEMORY_HOG, TIMEOUT

MANIFEST = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {{name: hogs}}
runs:
  - workflow_name: Fine
    for_each: "{{{{ range(30) }}}}"
    key: "fine-{{{{ item }}}}"
    input: {{n: "{{{{ item }}}}"}}
  - workflow_name: Hog
    key: hog
    input:
      x: {hog}
"""
STATE = Path(".hatchet-manifest")


def _write(path: Path, hog: str) -> Path:
    path.write_text(MANIFEST.format(hog=json.dumps(hog)))
    return path


@pytest.mark.parametrize("workers", [("--workers", "1"), ("--workers", "2", "--parallel-threshold", "0")])
def test_apply_stops_at_the_memory_bound_and_sends_nothing(
    project: Path, run_cli: RunCli, workers: tuple[str, ...]
) -> None:
    path = _write(project / "manifests" / "hog.yaml", MEMORY_HOG)
    result = run_cli("apply", str(path), "--yes", "--render-memory", "200MiB", *workers)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}:9: runs[1]: rendering used more than 200 MiB of memory (--render-memory)\n" in result.stderr
    assert result.stderr.endswith("error: 1 problem found\n")
    assert engine_runs(STATE) == []


def test_diff_stops_at_the_timeout(project: Path, run_cli: RunCli) -> None:
    path = _write(project / "manifests" / "hog.yaml", CPU_HOG)
    result = run_cli("diff", str(path), "--render-timeout", "2s")
    assert result.exit_code == 1
    line = next(x for x in result.stderr.splitlines() if x.startswith(f"{path}:"))
    assert line.startswith(f"{path}:9: runs[1]: ")
    assert TIMEOUT.fullmatch(line.split(": ", 2)[2]), line


def test_the_base_of_a_diff_renders_under_the_bounds_too(project: Path, run_cli: RunCli) -> None:
    """`diff --base` renders the manifests at another revision: a pull request cannot hide a hog there either
    (a base with a hog is only possible where one was merged, but the render must stop all the same)."""
    path = _write(project / "manifests" / "hog.yaml", CPU_HOG)

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "base with a hog")
    _write(path, "{{ 1 }}")  # the head is harmless
    result = run_cli("diff", "manifests/hog.yaml", "--base", "HEAD", "--render-timeout", "2s")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    line = next(x for x in result.stderr.splitlines() if "runs[1]" in x)
    assert line.split(": ")[0].endswith("manifests/hog.yaml:9")  # in the base's checkout
    assert TIMEOUT.fullmatch(line.split(": ", 2)[2]), line
