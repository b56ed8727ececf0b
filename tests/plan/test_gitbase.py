"""`diff --base REV`: revisions that do not exist or are not revisions are clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunCli


def _git(*args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True)


@pytest.mark.parametrize(
    ("rev", "message"),
    [
        ("nope", "--base 'nope': no such commit in the repository at"),
        ("--output=/tmp/x", "--base '--output=/tmp/x': not a git revision"),
        ("-h", "--base '-h': not a git revision"),
        ("HEAD\x1b[2K", "not a git revision"),
        ("HEAD~5", "--base 'HEAD~5': no such commit"),
    ],
)
def test_a_bad_base_is_a_clear_error(rev: str, message: str, project: Path, run_cli: RunCli) -> None:
    _git("init", "-q", "-b", "main")
    _git("add", ".")
    _git("commit", "-qm", "base")
    result = run_cli("diff", "manifests", f"--base={rev}")
    assert result.exit_code == 1 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr
