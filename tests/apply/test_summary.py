"""The apply's summary accounts for every run it meant to send: submitted, failed, unknown or not sent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.apply.conftest import cli_args
from tests.conftest import ROOT


@pytest.mark.engine_faults('[{"kind": "refuse", "on_call": 3, "code": "RESOURCE_EXHAUSTED"}]')
def test_a_fatal_refusal_leaves_the_rest_not_sent_and_counted(tmp_path: Path, engine: dict[str, str]) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    args = ("apply", "manifests/bulk-parent.yaml", "--set", "count=2000", "--yes", "--engine", "remote")
    proc = subprocess.run(
        cli_args(*args, "--batch-size", "100", "--concurrency", "1", "-o", "json"),
        env=engine,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (1, 3), proc.stderr
    result = json.loads(proc.stdout)
    assert result["to_send"] == 2000
    assert result["failed"] == 100  # the refused chunk, and only it: the others were never sent
    assert result["submitted"] == 200 and result["unknown"] == 0
    assert result["not_sent"] == 2000 - 200 - 100
    assert "RESOURCE_EXHAUSTED" in " ".join(result["errors"])

    text = subprocess.run(
        cli_args(*args, "--batch-size", "100"), env=engine, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert text.returncode == 0, text.stderr  # the fault was armed once: the next apply sends the rest
    assert "Apply: 1800 to send: 1800 submitted, 0 failed, 0 unknown; 200 unchanged" in text.stdout
    assert "sent 1800/1800 (100%): 1800 submitted" in text.stderr
