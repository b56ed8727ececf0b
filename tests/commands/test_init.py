"""`hatchet-manifest init [DIR]`: what it writes validates and renders, it never overwrites, and a file is no DIR."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from hatchet_manifest.starter import CI_SUPPORT_DIR, WORKFLOW_PATH, starter_files
from tests.conftest import ROOT, RunCli

EXPECTED = {
    "manifests/example.yaml",
    "schemas/manifest.schema.json",
    ".pre-commit-config.yaml",
    str(WORKFLOW_PATH),
    *(str(CI_SUPPORT_DIR / p.name) for p in (ROOT / "examples" / "ci").iterdir() if p.name != WORKFLOW_PATH.name),
}


def tree(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(autouse=True)
def no_target(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI", "HATCHET_CLIENT_TOKEN", "HATCHET_MANIFEST_LEDGER", "HATCHET_MANIFEST_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_init_writes_a_layout_that_validates_and_renders(tmp_path: Path, run_cli: RunCli) -> None:
    target = tmp_path / "repo"  # created
    result = run_cli("init", str(target))
    assert result.exit_code == 0, result.stderr
    assert set(tree(target)) == EXPECTED
    for rel in sorted(EXPECTED):
        assert f"wrote {target / rel}\n" in result.stdout
    assert f"  cd {shlex.quote(str(target))} && hatchet-manifest validate manifests/\n" in result.stdout
    assert "  hatchet-manifest diff manifests/" in result.stdout

    # The schema is `hatchet-manifest schema`, byte for byte (and so the repository's copy).
    schema = run_cli("schema")
    assert (target / "schemas/manifest.schema.json").read_text() == schema.stdout
    assert (target / "schemas/manifest.schema.json").read_bytes() == (
        ROOT / "schemas/manifest.schema.json"
    ).read_bytes()
    # The CI example is examples/ci, the scripts executable.
    for p in (ROOT / "examples" / "ci").iterdir():
        dest = target / (WORKFLOW_PATH if p.name == WORKFLOW_PATH.name else CI_SUPPORT_DIR / p.name)
        assert dest.read_bytes() == p.read_bytes(), p.name
        assert os.access(dest, os.X_OK) == p.name.endswith(".sh"), p.name

    valid = run_cli("validate", "manifests/", cwd=target)
    assert valid.exit_code == 0, valid.stderr
    assert "1 manifest(s), 3 run(s): valid" in valid.stderr
    rendered = run_cli("render", "manifests/", "-o", "json")
    assert rendered.exit_code == 0, rendered.stderr
    runs = json.loads(rendered.stdout)["runs"]
    assert [r["key"] for r in runs] == [f"example-report-2026-01-0{d}" for d in (1, 2, 3)]
    assert runs[0]["input"] == {"day": "2026-01-01"}
    diff = run_cli("diff", "manifests/", "--detailed-exitcode")
    assert diff.exit_code == 2, diff.stderr
    assert "3 to create" in diff.stdout


def test_the_pre_commit_hook_runs_validate_on_the_whole_set(tmp_path: Path, run_cli: RunCli) -> None:
    assert run_cli("init", str(tmp_path)).exit_code == 0
    config = yaml.safe_load((tmp_path / ".pre-commit-config.yaml").read_text())
    (hook,) = config["repos"][0]["hooks"]
    assert config["repos"][0]["repo"] == "local"
    assert hook["entry"] == "hatchet-manifest validate manifests/"
    assert hook["pass_filenames"] is False
    # The hook's command, as pre-commit runs it (language: system), from the repository's root.
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    done = subprocess.run(shlex.split(hook["entry"]), cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    (tmp_path / "manifests" / "broken.yaml").write_text("apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\n")
    done = subprocess.run(shlex.split(hook["entry"]), cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "broken.yaml" in done.stderr


def test_init_again_refuses_names_every_file_and_changes_nothing(tmp_path: Path, run_cli: RunCli) -> None:
    assert run_cli("init", str(tmp_path)).exit_code == 0
    (tmp_path / "manifests" / "example.yaml").write_text("# mine\n")
    before = tree(tmp_path)
    again = run_cli("init", str(tmp_path))
    assert again.exit_code == 1
    assert again.stdout == ""
    assert f"error: {len(EXPECTED)} of the files init writes exist already, so nothing was written" in again.stderr
    for rel in EXPECTED:
        assert f"\n  {tmp_path / rel}\n" in again.stderr + "\n", rel
    assert tree(tmp_path) == before


def test_one_file_in_the_way_means_nothing_is_written(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / ".pre-commit-config.yaml").write_text("repos: []\n")
    (tmp_path / ".github").write_text("not a directory\n")  # a parent in the way
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "manifest.schema.json").symlink_to(tmp_path / "nowhere")  # dangling: still in the way
    before = tree(tmp_path)
    result = run_cli("init", str(tmp_path))
    assert result.exit_code == 1
    assert "error: 3 of the files init writes exist already" in result.stderr
    for rel in (".pre-commit-config.yaml", ".github", "schemas/manifest.schema.json"):
        assert f"  {tmp_path / rel}\n" in result.stderr + "\n"
    assert tree(tmp_path) == before
    assert not (tmp_path / "manifests").exists()
    assert not (tmp_path / "nowhere").exists()


def test_a_dir_that_is_a_file_is_a_clear_error(tmp_path: Path, run_cli: RunCli) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    result = run_cli("init", str(afile))
    assert result.exit_code == 1
    assert result.stderr == f"error: {afile} is not a directory: init writes its files into a directory\n"
    assert afile.read_text() == "x"


def test_init_defaults_to_the_current_directory(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("init", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "wrote manifests/example.yaml\n" in result.stdout
    assert "\n  hatchet-manifest validate manifests/\n" in result.stdout  # no `cd`
    assert set(tree(tmp_path)) == EXPECTED


def test_init_is_listed_and_every_starter_file_is_planned() -> None:
    assert {str(f.path) for f in starter_files()} == EXPECTED
