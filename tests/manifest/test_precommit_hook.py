"""The pre-commit hook validates the whole set whenever a manifest, values file or input schema changes."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import yaml

from tests.conftest import ROOT


def test_the_hook_runs_on_the_whole_set_for_every_kind_of_input() -> None:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["pass_filenames"] is False  # cross-file checks need every manifest, not only the staged ones
    files = re.compile(hook["files"])
    for changed in ("manifests/bulk-parent.yaml", "manifests/prod.values.yml", "schemas/inputs/DailyReport.json"):
        assert files.search(changed), changed
    assert not files.search("README.md") and not files.search("hatchet_manifest/cli.py")
    command = shlex.split(hook["entry"])
    assert command[0] == "hatchet-manifest"
    proc = subprocess.run(
        [sys.executable, "-m", "hatchet_manifest", *command[1:], *hook["args"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.endswith("run(s): valid\n")
