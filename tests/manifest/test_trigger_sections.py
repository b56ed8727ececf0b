"""crons, schedules and events in the manifest language: checked against the model with file:line, and, until
this version renders and applies them, refused before anything is sent (never silently ignored)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli

HEAD = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: t}\n"


def test_a_section_that_is_not_rendered_yet_is_refused_not_ignored(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD
        + "runs:\n  - workflow_name: W\n    key: k\n"
        + "crons:\n  - workflow_name: Nightly\n    name: nightly\n    expression: '0 3 * * *'\n"
        + "events:\n  - event_key: user:created\n    payload: {id: 1}\n"
    )
    for command in ("validate", "render", "diff"):
        result = (
            run_cli(command, str(path), "--engine", "embedded") if command == "diff" else run_cli(command, str(path))
        )
        assert result.exit_code == 1, (command, result.stdout)
        assert f"{path}:7: crons: declared, but this version renders and applies only runs yet" in result.stderr
        assert f"{path}:11: events: declared" in result.stderr
        assert result.stdout == ""


def test_trigger_entries_are_checked_against_the_model(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD
        + "crons:\n  - workflow_name: Nightly\n    expression: '0 3 * * *'\n    colour: red\n"
        + "schedules:\n  - workflow_name: Once\n"
        + "events:\n  - payload: {id: 1}\n"
    )
    result = run_cli("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:5: crons[0]: missing required field 'name'; unknown field 'colour'" in result.stderr
    assert f"{path}:9: schedules[0]: missing required field 'trigger_at'" in result.stderr
    assert f"{path}:11: events[0]: missing required field 'event_key'" in result.stderr


def test_a_manifest_declaring_nothing_says_so(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "runs: []\ncrons: []\n")
    result = run_cli("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:1: a manifest declares at least one of runs, crons, schedules or events" in result.stderr
