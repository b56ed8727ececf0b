"""Bad manifests fail with exactly the messages pinned beside them; good ones validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, RunCli

DATA = ROOT / "tests" / "data"
BAD = sorted((DATA / "bad").glob("*.yaml"))
GOOD = sorted((DATA / "good").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_manifest_messages(path: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", str(path.relative_to(ROOT)), cwd=ROOT)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr == path.with_suffix(".expected").read_text()


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_manifest_validates(path: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", str(path), cwd=ROOT)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.endswith("valid\n")
