"""The sdist, built from this repository as a release would be: what it holds and what it declares."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_sdist_holds_what_the_tests_and_the_stub_generation_need(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (sdist,) = tmp_path.glob("hatchet_manifest-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        info = tar.extractfile(
            next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO") and m.name.count("/") == 1)
        )
        assert info is not None
        pkg_info = info.read().decode()
    for needed in (
        "LICENSE",
        "README.md",
        "ARCHITECTURE.md",
        "tests/conftest.py",
        "tests/outcomes/launch_worker.py",
        "scripts/gen_protos.py",
        "scripts/schema_pydantic_versions.py",
        "schemas/manifest.schema.json",
        "sdk/hatchet_client/_proto/__init__.py",
        "hatchet_manifest/cli.py",
    ):
        assert needed in names, needed
    assert any(n.startswith("sdk/protos/") and n.endswith(".proto") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or ".hatchet-manifest" in n]
    assert "License-Expression: MIT" in pkg_info and "License-File: LICENSE" in pkg_info
    assert "Classifier: Typing :: Typed" in pkg_info
    urls = [line.removeprefix("Project-URL: ") for line in pkg_info.splitlines() if line.startswith("Project-URL: ")]
    repository = "https://github.com/OWNER/hatchet-manifest"  # OWNER: a placeholder until the repository is decided
    assert urls == [
        f"Homepage, {repository}",
        f"Documentation, {repository}#readme",
        f"Repository, {repository}",
        f"Issues, {repository}/issues",
        f"Changelog, {repository}/releases",
    ]


def test_shell_completion_completes_commands() -> None:
    env = {"COMP_WORDS": "hatchet-manifest st", "COMP_CWORD": "1", "_HATCHET_MANIFEST_COMPLETE": "bash_complete"}
    proc = subprocess.run(
        [sys.executable, "-m", "hatchet_manifest"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "plain,status" in proc.stdout.splitlines(), proc.stdout + proc.stderr
