"""crons, schedules and events in the manifest language: checked against the model with file:line, and, until
this version renders and applies them, refused before anything is sent (never silently ignored)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunCli

HEAD = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: t}\n"


def test_trigger_sections_render_with_loops_and_their_own_fields(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD
        + "vars: {regions: [eu, us]}\n"
        + "runs:\n  - workflow_name: W\n    key: k\n"
        + "crons:\n  - workflow_name: Nightly\n    name: 'nightly-{{ item }}'\n    for_each: '{{ regions }}'\n"
        + "    expression: '0 3 * * *'\n    input: {region: '{{ item }}'}\n    enabled: \"{{ item == 'eu' }}\"\n"
        + "schedules:\n  - workflow_name: Once\n    key: launch\n    trigger_at: '2027-01-01T09:00:00.250+02:00'\n"
        + "events:\n  - event_key: user:created\n    payload: {id: 1}\n    scope: tenant-a\n    priority: 2\n"
    )
    result = run_cli("render", str(path), "-o", "json")
    assert result.exit_code == 0, result.stderr
    rendered = {r["key"]: r for r in json.loads(result.stdout)["runs"]}
    assert rendered["cron:nightly-eu"] == {
        "key": "cron:nightly-eu",
        "kind": "cron",
        "name": "nightly-eu",
        "expression": "0 3 * * *",
        "enabled": True,
        "workflow_name": "Nightly",
        "input": {"region": "eu"},
        "options": {"additional_metadata": {}},
    }
    assert rendered["cron:nightly-us"]["enabled"] is False
    assert rendered["schedule:launch"]["trigger_at"] == "2027-01-01T07:00:00.250Z"  # UTC, one spelling
    [event] = [r for r in rendered.values() if r.get("kind") == "event"]
    assert event["key"].startswith("event:t/0/") and "workflow_name" not in event
    assert (event["event_key"], event["scope"], event["payload"], event["options"]["priority"]) == (
        "user:created",
        "tenant-a",
        {"id": 1},
        2,
    )
    assert rendered["k"] == {"key": "k", "workflow_name": "W", "input": {}, "options": {"additional_metadata": {}}}


def test_bad_trigger_fields_are_located_and_all_reported(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD
        + "runs:\n  - workflow_name: W\n    key: 'cron:x'\n"  # 4-6
        + "crons:\n  - workflow_name: N\n    name: n\n    expression: '0 3 * *'\n"  # 7-10
        + "  - workflow_name: N\n    name: m\n    expression: '61 3 * * *'\n    enabled: '{{ 1 }}'\n"  # 11-14
        + "  - workflow_name: N\n    name: s\n    expression: '{{ secret(\"X\") }}'\n"  # 15-17
        + "  - workflow_name: N\n    name: dup\n    expression: '@daily'\n"  # 18-20
        + "  - workflow_name: N\n    name: dup\n    expression: '@hourly'\n"  # 21-23
        + "schedules:\n  - workflow_name: O\n    trigger_at: '2027-01-01 09:00'\n"  # 24-26
        + "  - workflow_name: O\n    trigger_at: '2027-01-01T09:00:00'\n"  # 27-28
        + "events:\n  - event_key: \"a\\u0001\"\n    payload: {id: '{{ nope }}'}\n    scope: '{{ \"\" }}'\n"  # 29-32
    )
    result = run_cli("validate", str(path))
    assert result.exit_code == 1
    err = result.stderr
    for expected in (
        f"{path}:6: runs[0]: key: run keys may not start with cron:, schedule:, event:",
        f"{path}:10: crons[0]: expression: cron expression '0 3 * *': expected 5 fields",
        f"{path}:13: crons[1]: expression: cron expression '61 3 * * *': minute field",
        f"{path}:14: crons[1]: enabled: must be true or false, got a number",
        f"{path}:17: crons[2]: expression: secret() cannot be used in a cron's expression",
        f"{path}:22: crons[4]: name: duplicate key 'cron:dup'",
        f"{path}:26: schedules[0]: trigger_at: must be an RFC 3339 date-time such as 2027-01-01T09:00:00Z",
        f"{path}:28: schedules[1]: trigger_at: needs an offset",
        f"{path}:30: events[0]: event_key: contains the control character",
        f"{path}:31: events[0]: payload.id: 'nope' is undefined",
        f"{path}:32: events[0]: scope: must be a non-empty string",
    ):
        assert expected in err, (expected, err)
    assert "Traceback" not in err


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
