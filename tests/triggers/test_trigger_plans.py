"""Crons, schedules and events in every kind of plan: a saved plan (`diff --out`, `apply PLAN`) holding them is
sealed, verified and applied as saved; a pull request's `diff --base` shows what changed in them (fields, next
firing times) from git alone; the markdown plan names them; a plan edited by hand is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hatchet_client.engine import Engine

from tests.conftest import RunCli
from tests.triggers.conftest import cli_env, json_out, sdk_crons, write

BODY = """\
crons:
  - {workflow_name: Tick, name: planned, expression: '0 1 * * *', input: {v: 1}}
schedules:
  - {workflow_name: Tick, key: planned-once, trigger_at: '2099-01-01T00:00:00Z'}
events:
  - {event_key: 'order:paid', key: planned-event, payload: {id: 9}}
"""


def test_a_saved_plan_of_triggers_is_applied_as_saved(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    path = write(tmp_path / "p.yaml", "planfile", BODY)
    plan = tmp_path / "plan.json"
    made = run_cli("diff", str(path), "--engine", "remote", "--out", str(plan), env=env)
    assert made.exit_code == 0, made.stderr
    result = run_cli("apply", str(plan), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "1 cron created, 1 event pushed, 1 schedule created" in result.stdout
    [cron] = [c for c in sdk_crons(engine) if (c["metadata"] or {}).get("hatchet-manifest/trigger-of") == "planfile"]
    assert (cron["name"], cron["expression"], cron["input"]) == ("planned", "0 1 * * *", {"v": 1})

    # a change, saved: the cron's expression; the saved plan says what changed and is applied so
    write(path, "planfile", BODY.replace("0 1 * * *", "0 2 * * *"))
    assert run_cli("diff", str(path), "--engine", "remote", "--out", str(plan), env=env).exit_code == 0
    text = plan.read_text()
    assert '"changes":["expression"]' in text
    # edited by hand: the seal breaks, nothing is applied
    tampered = tmp_path / "tampered.json"
    tampered.write_text(text.replace("0 2 * * *", "* * * * * *"))
    refused = run_cli("apply", str(tampered), "--engine", "remote", "-y", env=env)
    assert refused.exit_code == 1 and "Triggers:" not in refused.stdout
    result = run_cli("apply", str(plan), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0 and "1 cron replaced" in result.stdout, result.stdout + result.stderr
    [cron] = [c for c in sdk_crons(engine) if (c["metadata"] or {}).get("hatchet-manifest/trigger-of") == "planfile"]
    assert cron["expression"] == "0 2 * * *"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True, capture_output=True
    )


def test_a_pull_request_diff_against_git_shows_trigger_changes(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    path = write(repo / "manifests" / "t.yaml", "gitbase", BODY)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    write(
        path,
        "gitbase",
        BODY.replace("0 1 * * *", "0 2 * * *").replace("2099-01-01", "2099-02-01").replace("{id: 9}", "{id: 10}"),
    )
    monkeypatch.chdir(repo)
    result = run_cli("diff", "manifests/t.yaml", "--base", "main", "-o", "json", "--detailed-exitcode")
    assert result.exit_code == 2, result.stderr
    records = {r["key"]: r for r in json_out(result.stdout)["runs"]}
    assert records["cron:planned"]["changes"] == ["expression"]
    assert records["cron:planned"]["next"][0].endswith("T02:00:00Z")
    assert records["schedule:planned-once"]["changes"] == ["trigger_at"]
    assert records["event:planned-event"]["changes"] == ["payload"]
    markdown = run_cli("diff", "manifests/t.yaml", "--base", "main", "-o", "markdown").stdout
    assert "`cron:planned`" in markdown and "cron `0 2 * * *` next `" in markdown
    assert '`expression`: `"0 1 * * *"` → `"0 2 * * *"`' in markdown
    text = run_cli("diff", "manifests/t.yaml", "--base", "main").stdout
    assert "~ cron:planned  Tick  cron '0 2 * * *'  next " in text and "(changed: expression)" in text
    assert json.loads(run_cli("render", "manifests/t.yaml", "-o", "json").stdout)["runs"][0]["kind"] == "cron"
