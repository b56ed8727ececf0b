"""diff and saved plans through the real CLI against the embedded engine and a git base."""

from __future__ import annotations

import json
from pathlib import Path

from tests.apply.conftest import engine_runs
from tests.apply.test_apply_embedded import STATE, apply
from tests.conftest import RunCli


def test_diff_shows_create_changed_unchanged_removed(project: Path, run_cli: RunCli) -> None:
    result = run_cli("diff", "manifests/bulk-parent.yaml", "--detailed-exitcode")
    assert result.exit_code == 2
    assert result.stdout.splitlines()[-1] == "Plan: 20 to create, 0 changed, 0 unchanged, 0 removed, 0 unknown."
    assert '+ bulk-parent-0  BulkParent  {"n":0}' in result.stdout
    assert run_cli("apply", "manifests/bulk-parent.yaml", "--yes").exit_code == 0
    result = run_cli("diff", "manifests/bulk-parent.yaml", "--detailed-exitcode")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Plan: 0 to create, 0 changed, 20 unchanged, 0 removed, 0 unknown.\n"

    manifest = Path("manifests/bulk-parent.yaml")
    manifest.write_text(manifest.read_text().replace('n: "{{ i }}"', 'n: "{{ i * 10 }}"'))
    result = run_cli("diff", str(manifest), "--set", "count=18", "-o", "json", "--detailed-exitcode")
    assert result.exit_code == 2
    plan = json.loads(result.stdout)
    assert plan["summary"] == {"create": 0, "changed": 17, "unchanged": 1, "removed": 2, "unknown": 0}
    removed = [r for r in plan["runs"] if r["action"] == "removed"]
    assert sorted(r["key"] for r in removed) == ["bulk-parent-18", "bulk-parent-19"]
    assert all(r["run_id"] for r in removed)

    code, data, _ = apply(run_cli, "--set", "count=18", path=str(manifest))
    assert code == 0 and data["submitted"] == 0 and data["skipped_changed"] == 17
    assert len(engine_runs(STATE)) == 20

    code, data, _ = apply(run_cli, "--set", "count=18", "--resubmit-changed", path=str(manifest))
    assert code == 0 and data["submitted"] == 17 and data["skipped_changed"] == 0
    runs = engine_runs(STATE)
    assert len(runs) == 37 and sorted(r["input"]["n"] for r in runs)[-1] == 170  # type: ignore[index]
    result = run_cli("diff", str(manifest), "--set", "count=18", "-o", "json")
    assert json.loads(result.stdout)["summary"] == {
        "create": 0,
        "changed": 0,
        "unchanged": 18,
        "removed": 2,
        "unknown": 0,
    }


def test_saved_plan_applies_exactly_and_stale_plans_are_refused(project: Path, run_cli: RunCli) -> None:
    result = run_cli("diff", "manifests/bulk-parent.yaml", "--set", "count=5", "--out", "plan.json")
    assert result.exit_code == 0 and "plan saved to plan.json" in result.stderr
    stale = run_cli("diff", "manifests/bulk-parent.yaml", "--set", "count=3", "--out", "stale.json")
    assert stale.exit_code == 0
    result = run_cli("apply", "plan.json", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["submitted"] == 5
    assert sorted(r["input"]["n"] for r in engine_runs(STATE)) == [0, 1, 2, 3, 4]  # type: ignore[index]
    result = run_cli("apply", "stale.json", "--yes")
    assert result.exit_code == 1
    assert "the plan is stale" in result.stderr
    result = run_cli("apply", "plan.json", "--yes", "--set", "count=2")
    assert result.exit_code == 1 and "applied exactly as saved" in result.stderr
    other = run_cli("apply", "plan.json", "--yes", "--state-dir", "elsewhere")
    assert other.exit_code == 1 and "this plan is for target" in other.stderr


def test_diff_against_a_git_base(project: Path, run_cli: RunCli) -> None:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    manifest = Path("manifests/bulk-parent.yaml")
    manifest.write_text(manifest.read_text().replace("count: 20", "count: 22"))
    Path("manifests/manual-trigger.yaml").unlink()
    result = run_cli("diff", "manifests", "--base", "HEAD", "--detailed-exitcode")
    assert result.exit_code == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "Plan: 2 to create, 0 changed, 31 unchanged, 1 removed, 0 unknown."
    assert "- manual-trigger  ManualTriggerWorkflow  (removed from the manifests)" in lines
    assert not (STATE / "engine.db").exists()  # a git diff needs no engine
    outside = project.parent / "outside.yaml"
    outside.write_text(manifest.read_text())
    result = run_cli("diff", str(outside), "--base", "HEAD")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"--base compares files in git: {outside} is outside the repository at" in result.stderr


def test_a_saved_plan_flags_secret_runs_without_needing_the_secret(project: Path, run_cli: RunCli) -> None:
    """`diff --out` in a pull-request job has no secrets: it warns, saves the run flagged (never its value), and
    `apply plan.json` refuses it (such runs are applied from the manifests)."""
    (project / "manifests" / "secret.yaml").write_text(
        "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: secret}\nruns:\n"
        "  - workflow_name: S\n    key: s-1\n    input: {token: \"{{ secret('DEPLOY_TOKEN') }}\"}\n"
    )
    result = run_cli("diff", "manifests/secret.yaml", "--out", "plan.json", "--allow-secret", "DEPLOY_TOKEN")
    assert result.exit_code == 0, result.stderr
    assert "secret DEPLOY_TOKEN is not set" in result.stderr
    [record] = json.loads(Path("plan.json").read_text())["runs"]
    assert (record["key"], record["secret"], record["input"]) == ("s-1", True, {"token": "***"})
    refused = run_cli("apply", "plan.json", "--yes")
    assert refused.exit_code == 1 and "1 run(s) use secret(), 's-1' first; plans never hold secret values" in (
        refused.stderr
    )
