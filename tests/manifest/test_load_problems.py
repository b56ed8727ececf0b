"""Every problem is reported at once: a manifest that does not load does not hide the others' problems."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli

HEAD = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\n"


def test_a_structural_error_does_not_hide_template_errors_elsewhere(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + "metadata: {name: a}\nruns:\n  - workflow_name: W\n    bogus: 1\n")
    (tmp_path / "b.yaml").write_text(
        HEAD + 'metadata: {name: b}\nruns:\n  - workflow_name: W\n    input: {x: "{{ nope }}"}\n'
    )
    (tmp_path / "c.yaml").write_text(
        HEAD + 'metadata: {name: c}\nruns:\n  - workflow_name: W\n    input: {x: "{{ 1 | nope }}"}\n'
    )
    for command in ("validate", "render"):
        result = run_cli(command, str(tmp_path))
        assert result.exit_code == 1 and result.stdout == ""
        *problems, last = result.stderr.splitlines()
        assert last == "error: 3 problems found"
        assert sorted(problems) == [
            f"{tmp_path}/a.yaml:6: runs[0]: unknown field 'bogus'",
            f"{tmp_path}/b.yaml:6: runs[0]: input.x: 'nope' is undefined",
            f"{tmp_path}/c.yaml:6: runs[0]: input.x: no filter named 'nope'",
        ]


def test_a_file_named_twice_is_read_once(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "metadata: {name: m}\nruns:\n  - workflow_name: W\n    key: k\n")
    result = run_cli("validate", str(path), str(path), str(tmp_path), f"{tmp_path}/./m.yaml")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "1 manifest(s), 1 run(s): valid\n"


def test_values_files_beside_manifests_are_data_unless_named(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "m.yaml").write_text(HEAD + "metadata: {name: m}\nruns:\n  - workflow_name: W\n    key: k\n")
    values = tmp_path / "prod.values.yaml"
    values.write_text("count: 3\n")
    result = run_cli("validate", str(tmp_path))
    assert result.exit_code == 0 and result.stderr == "1 manifest(s), 1 run(s): valid\n"
    result = run_cli("validate", str(tmp_path), str(values))
    assert result.exit_code == 1
    assert result.stderr == (
        f"{values}:1: not a manifest: it has no apiVersion or kind (a values file? pass it with -f/--values)\n"
        "error: 1 problem found\n"
    )


def test_manifest_files_are_read_within_bounds(tmp_path: Path, run_cli: RunCli) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(65 << 20)
    result = run_cli("validate", "/dev/zero", str(huge))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr == (
        "/dev/zero: cannot read manifest: not a regular file\n"
        f"{huge}: manifest is larger than 64 MiB\n"
        "error: 2 problems found\n"
    )


def test_a_saved_plan_given_as_a_manifest_is_named_for_what_it_is(tmp_path: Path, run_cli: RunCli) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"apiVersion": "hatchet-manifest/v1", "kind": "Plan", "runs": []}\n')
    result = run_cli("validate", str(plan))
    assert result.exit_code == 1
    assert result.stderr == (
        f"{plan}:1: a saved plan, not a manifest: apply it with `apply PLAN.json`\nerror: 1 problem found\n"
    )
