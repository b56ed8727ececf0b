"""diff and apply through the real CLI against the embedded engine (real gRPC on loopback, real SQLite)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from hatchet_manifest.ledger import open_ledger
from tests.apply.conftest import engine_runs
from tests.conftest import RunCli

STATE = Path(".hatchet-manifest")
EXAMPLES = 1 + 20 + 7 + 4


def apply(run_cli: RunCli, *args: str, path: str = "manifests") -> tuple[int, dict[str, object], str]:
    result = run_cli("apply", path, "--yes", "-o", "json", *args)
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, data, result.stderr


def test_apply_twice_submits_once_and_stamps_runs(project: Path, run_cli: RunCli) -> None:
    code, data, err = apply(run_cli)
    assert code == 0, err
    assert "target: the embedded engine" in err
    assert data["submitted"] == EXAMPLES and data["plan"] == {"create": EXAMPLES}
    runs = engine_runs(STATE)
    assert len(runs) == EXAMPLES
    keys = Counter(r["metadata"]["hatchet-manifest/key"] for r in runs)  # type: ignore[index]
    assert len(keys) == EXAMPLES and max(keys.values()) == 1
    bulk = [r for r in runs if r["workflow_name"] == "BulkParent"]
    assert sorted(r["input"]["n"] for r in bulk) == list(range(20))  # type: ignore[index]
    assert bulk[0]["metadata"]["hatchet-manifest/manifest"] == "bulk-parent"  # type: ignore[index]

    code, data, err = apply(run_cli)
    assert code == 0, err
    assert data["submitted"] == 0 and data["plan"] == {"unchanged": EXAMPLES}
    assert len(engine_runs(STATE)) == EXAMPLES

    with open_ledger(None, STATE) as ledger:
        (target,) = ledger.targets()
        entries = list(ledger.entries(target))
    assert len(entries) == EXAMPLES and {e.state for e in entries} == {"submitted"}
    by_id = {r["run_id"] for r in runs}
    assert {e.run_id for e in entries} == by_id


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


def test_invalid_manifest_submits_nothing(project: Path, run_cli: RunCli) -> None:
    Path("manifests/broken.yaml").write_text(
        "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: broken}\n"
        "runs:\n  - workflow_name: X\n    key: x\n    input: {n: '{{ 1 / 0 }}'}\n"
    )
    result = run_cli("apply", "manifests", "--yes")
    assert result.exit_code == 1
    assert "manifests/broken.yaml:7: runs[0]: input.n: ZeroDivisionError: division by zero" in result.stderr
    assert not (STATE / "engine.db").exists() or engine_runs(STATE) == []


def test_dry_run_sends_nothing(project: Path, run_cli: RunCli) -> None:
    result = run_cli("apply", "manifests", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].startswith(f"Plan: {EXAMPLES} to create")
    assert engine_runs(STATE) == []


def test_no_tty_without_yes_refuses(project: Path, run_cli: RunCli) -> None:
    result = run_cli("apply", "manifests")
    assert result.exit_code == 1
    assert f"about to submit {EXAMPLES} run(s)" in result.stderr and "pass --yes" in result.stderr
    assert engine_runs(STATE) == []


def test_auto_engine_in_ci_without_token_is_an_error(
    project: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = run_cli("apply", "manifests", "--yes")
    assert result.exit_code == 1
    assert "CI is set but HATCHET_CLIENT_TOKEN is not" in result.stderr
    assert run_cli("apply", "manifests", "--yes", "--engine", "embedded").exit_code == 0


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


def test_a_second_apply_is_told_who_holds_the_lock_and_may_wait(project: Path, run_cli: RunCli) -> None:
    import threading

    assert run_cli("apply", "manifests/manual-trigger.yaml", "--yes").exit_code == 0
    with open_ledger(None, STATE) as ledger:
        (target,) = ledger.targets()
        held = ledger.lock(target)
        held.__enter__()
        busy = run_cli("apply", "manifests", "--yes")
        assert busy.exit_code == 1
        assert f"the ledger for target {target.id} is locked (held by host" in busy.stderr
        assert engine_runs(STATE) and len(engine_runs(STATE)) == 1
        threading.Timer(1.0, held.__exit__, (None, None, None)).start()
        waited = run_cli("apply", "manifests", "--yes", "--lock-wait", "30")
    assert waited.exit_code == 0, waited.stderr
    assert "waiting up to 30s for the ledger lock" in waited.stderr and "got the ledger lock" in waited.stderr
    assert len(engine_runs(STATE)) == EXAMPLES


def test_rps_limits_the_rate_and_must_be_positive(project: Path, run_cli: RunCli) -> None:
    result = run_cli("apply", "manifests/bulk-parent.yaml", "--yes", "--rps", "0")
    assert result.exit_code == 2
    assert "--rps" in result.stderr
    code, data, _ = apply(run_cli, "--rps", "5000", "--batch-size", "5", path="manifests/bulk-parent.yaml")
    assert (code, data["submitted"]) == (0, 20)  # the pacing itself is tested on a fake clock (tests/sdk)


def test_a_saved_plan_flags_secret_runs_without_needing_the_secret(project: Path, run_cli: RunCli) -> None:
    """`diff --out` in a pull-request job has no secrets: it warns, saves the run flagged (never its value), and
    `apply plan.json` refuses it (such runs are applied from the manifests)."""
    (project / "manifests" / "secret.yaml").write_text(
        "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: secret}\nruns:\n"
        "  - workflow_name: S\n    key: s-1\n    input: {token: \"{{ secret('DEPLOY_TOKEN') }}\"}\n"
    )
    result = run_cli("diff", "manifests/secret.yaml", "--out", "plan.json")
    assert result.exit_code == 0, result.stderr
    assert "secret DEPLOY_TOKEN is not set" in result.stderr
    [record] = json.loads(Path("plan.json").read_text())["runs"]
    assert (record["key"], record["secret"], record["input"]) == ("s-1", True, {"token": "***"})
    refused = run_cli("apply", "plan.json", "--yes")
    assert refused.exit_code == 1 and "uses secret(); plans never hold secret values" in refused.stderr


@pytest.mark.parametrize("option", ["--warn-age", "--lookup-window"])
def test_a_bad_duration_is_a_usage_error_before_any_work(project: Path, run_cli: RunCli, option: str) -> None:
    result = run_cli("diff", "manifests/bulk-parent.yaml", option, "7x")
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': bad duration '7x': use e.g. 90m, 12h, 30d, 2w" in result.stderr
    assert result.stdout == "" and not STATE.exists()  # nothing rendered, no engine started
