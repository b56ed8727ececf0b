"""Input schema paths stay inside the repository that holds the manifests, and the default schema directory is
that repository's, wherever the command runs from. Real directories, git work trees, symlinks and FIFOs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hatchet_manifest.manifest.validate import MAX_SCHEMA_BYTES
from hatchet_manifest.text import quote
from tests.conftest import RunCli

OUTSIDE = "refused: input schema paths must lead to a file inside the repository that holds the manifest"
SCHEMA = '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}'


def manifest(schema: str | None = None, workflow: str = "W", n: str = "1") -> str:
    lines = [
        "apiVersion: hatchet-manifest/v1",
        "kind: TriggerManifest",
        "metadata: {name: m}",
        "runs:",
        f"  - workflow_name: {workflow!r}",
        "    key: k",
        f"    input: {{n: {n}}}",
    ]
    if schema is not None:
        lines.append(f"    input_schema: {schema!r}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree with manifests/ and schemas/inputs/, beside a directory outside it holding a schema."""
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    (root / "schemas" / "inputs").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "schema.json").write_text(SCHEMA)
    monkeypatch.chdir(root)
    return root


def problem_of(run_cli: RunCli, *args: str, cwd: Path | None = None) -> str:
    result = run_cli("validate", *args, cwd=cwd)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    *problems, last = result.stderr.splitlines()
    assert last == "error: 1 problem found"
    [problem] = problems
    return problem


def test_paths_outside_the_repository_are_refused_alike(repo: Path, run_cli: RunCli) -> None:
    outside = repo.parent / "outside"
    (repo / "manifests" / "link.json").symlink_to(outside / "schema.json")
    (repo / "manifests" / "dangling.json").symlink_to(outside / "absent.json")
    (repo / "manifests" / "linkdir").symlink_to(outside)
    cases = [
        str(outside / "schema.json"),  # exists, valid JSON
        str(outside / "absent.json"),  # does not exist
        "/proc/self/environ",
        "/etc/passwd",
        "/dev/zero",
        "../../outside/schema.json",
        "../../outside/absent.json",
        "link.json",  # a symlink out of the repository
        "dangling.json",
        "linkdir/schema.json",
        "../../../../../../../../etc/hostname",
    ]
    for schema in cases:
        (repo / "manifests" / "m.yaml").write_text(manifest(schema))
        assert problem_of(run_cli, "manifests/m.yaml") == (
            f"manifests/m.yaml:8: runs[0]: input_schema: {OUTSIDE}, got {quote(schema)}"  # shortened to 80
        ), schema


def test_paths_inside_the_repository_work_and_non_files_are_refused(repo: Path, run_cli: RunCli) -> None:
    (repo / "schemas" / "w.json").write_text(SCHEMA)
    (repo / "manifests" / "inner.json").symlink_to(repo / "schemas" / "w.json")  # a symlink that stays inside
    for schema in ("../schemas/w.json", str(repo / "schemas" / "w.json"), "inner.json"):
        (repo / "manifests" / "m.yaml").write_text(manifest(schema, n='"x"'))
        assert (
            problem_of(run_cli, "manifests/m.yaml")
            == "manifests/m.yaml:7: runs[0]: input.n: 'x' is not of type 'integer'"
        )
        (repo / "manifests" / "m.yaml").write_text(manifest(schema))
        assert run_cli("validate", "manifests/m.yaml").exit_code == 0
    (repo / "manifests" / "adir").mkdir()
    (repo / "manifests" / "big.json").write_text(" " * (MAX_SCHEMA_BYTES + 1))
    (repo / "manifests" / "bad.json").write_text("{not json")
    (repo / "manifests" / "deep.json").write_text("[" * 100 + "]" * 100)
    cases = {
        "adir": "'adir' is not a regular file",
        "big.json": f"'big.json' is larger than {MAX_SCHEMA_BYTES} bytes",
        "bad.json": "'bad.json' is not valid JSON: line 1: Expecting property name enclosed in double quotes",
        "deep.json": "'deep.json' is nested deeper than 64 levels",
        "absent.json": "no such file 'absent.json'",
    }
    for schema, message in cases.items():
        (repo / "manifests" / "m.yaml").write_text(manifest(schema))
        assert problem_of(run_cli, "manifests/m.yaml") == f"manifests/m.yaml:8: runs[0]: input_schema: {message}"


def test_a_fifo_is_refused_without_opening_it(repo: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the check must not open it (a subprocess, so that
    a regression hangs only it, for the timeout)."""
    os.mkfifo(repo / "manifests" / "pipe.json")
    os.mkfifo(repo / "schemas" / "inputs" / "W.json")
    (repo / "manifests" / "m.yaml").write_text(manifest("pipe.json"))
    (repo / "manifests" / "n.yaml").write_text(manifest().replace("name: m", "name: n").replace("key: k", "key: j"))
    done = subprocess.run(
        [sys.executable, "-m", "hatchet_manifest", "validate", "manifests"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "manifests/m.yaml:8: runs[0]: input_schema: 'pipe.json' is not a regular file",
        "manifests/n.yaml:5: runs[0]: input_schema: 'schemas/inputs/W.json' is not a regular file",
        "error: 2 problems found",
    ]


def test_workflow_names_cannot_lead_schema_lookups_out(repo: Path, run_cli: RunCli) -> None:
    (repo / "manifests" / "m.yaml").write_text(manifest(workflow="../../../outside/schema"))
    assert problem_of(run_cli, "manifests/m.yaml") == (
        "manifests/m.yaml:5: runs[0]: input_schema: refused: the input schema of workflow '../../../outside/schema' "
        "would be read from outside the repository that holds the manifest"
    )
    (repo / "schemas" / "inputs" / "Out.json").symlink_to(repo.parent / "outside" / "schema.json")
    (repo / "manifests" / "m.yaml").write_text(manifest(workflow="Out"))
    assert problem_of(run_cli, "manifests/m.yaml") == (
        "manifests/m.yaml:5: runs[0]: input_schema: refused: the input schema of workflow 'Out' "
        "would be read from outside the repository that holds the manifest"
    )


def test_the_default_schema_dir_is_the_repository_s_wherever_the_command_runs(
    repo: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    (repo / "schemas" / "inputs" / "W.json").write_text(SCHEMA)
    (repo / "manifests" / "m.yaml").write_text(manifest(n='"x"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd, path in (
        (repo, "manifests/m.yaml"),
        (elsewhere, str(repo / "manifests" / "m.yaml")),
        (repo / "manifests", "m.yaml"),
    ):
        result = run_cli("validate", path, cwd=cwd)
        assert result.exit_code == 1, (cwd, result.stderr)
        assert result.stderr.splitlines()[0] == f"{path}:7: runs[0]: input.n: 'x' is not of type 'integer'"
    # --schema-dir is relative to the current directory, as given
    (elsewhere / "mine").mkdir()
    (elsewhere / "mine" / "W.json").write_text('{"type": "object", "required": ["other"]}')
    result = run_cli("validate", str(repo / "manifests" / "m.yaml"), "--schema-dir", "mine", cwd=elsewhere)
    assert result.exit_code == 1
    assert (
        result.stderr.splitlines()[0]
        == f"{repo / 'manifests' / 'm.yaml'}:7: runs[0]: input: 'other' is a required property"
    )
    result = run_cli("validate", str(repo / "manifests" / "m.yaml"), "--schema-dir", "nothing-here", cwd=elsewhere)
    assert result.exit_code == 0, result.stderr


def test_outside_git_the_current_directory_bounds_schema_paths(tmp_path: Path, run_cli: RunCli) -> None:
    project = tmp_path / "project"
    (project / "manifests").mkdir(parents=True)
    (project / "schemas").mkdir()
    (project / "schemas" / "w.json").write_text(SCHEMA)
    (tmp_path / "outside.json").write_text(SCHEMA)
    (project / "manifests" / "m.yaml").write_text(manifest("../schemas/w.json", n='"x"'))
    result = run_cli("validate", "manifests/m.yaml", cwd=project)
    assert result.stderr.splitlines()[0] == "manifests/m.yaml:7: runs[0]: input.n: 'x' is not of type 'integer'"
    (project / "manifests" / "m.yaml").write_text(manifest("../../outside.json"))
    assert problem_of(run_cli, "manifests/m.yaml") == (
        f"manifests/m.yaml:8: runs[0]: input_schema: {OUTSIDE}, got '../../outside.json'"
    )
    # run from elsewhere, the manifest's own directory is the bound
    (tmp_path / "elsewhere").mkdir()
    (project / "manifests" / "m.yaml").write_text(manifest("../schemas/w.json"))
    shown = str(project / "manifests" / "m.yaml")
    assert problem_of(run_cli, shown, cwd=tmp_path / "elsewhere") == (
        f"{shown}:8: runs[0]: input_schema: {OUTSIDE}, got '../schemas/w.json'"
    )
