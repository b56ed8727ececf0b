"""status, apply --wait, retry and cancel against the served embedded engine, with an official SDK worker running
the tasks in a real process: the counts, the failed runs listed, exit codes 0/5/6, replays recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hatchet_client.engine import Engine

from hatchet_manifest.ledger import Target, open_ledger
from tests.conftest import RunCli
from tests.outcomes.conftest import cli_env, launch_manifest

FAST = ("--poll-interval", "0.2s", "--poll-rps", "50")


def target_of(engine: Engine) -> Target:
    return Target(engine.tenant_id, engine.address)


def run_json(run_cli: RunCli, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli(*args, "--engine", "remote", "-o", "json", env=env)
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_apply_wait_lists_exactly_the_failed_runs_and_retry_brings_all_to_completed(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    flag = tmp_path / "broken"
    flag.write_text("the cause")
    manifest = launch_manifest(tmp_path / "m.yaml", "backfill", 30, failing=str(flag), every=7)
    env = cli_env(engine, tmp_path / "state")

    code, doc, stderr = run_json(run_cli, env, "apply", str(manifest), "--yes", "--wait", *FAST)
    assert code == 5, stderr
    assert doc["apply"]["submitted"] == 30
    assert doc["outcome"] == "failed"
    assert doc["total"] | {"manifest": "backfill"} == {
        "manifest": "backfill", "recorded": 30, "queued": 0, "running": 0, "completed": 25, "failed": 5,
        "cancelled": 0, "not_found": 0, "untracked": 0,
    }  # fmt: skip
    failed = {f["key"]: f for f in doc["failed"]}
    assert set(failed) == {f"backfill-{i}" for i in (0, 7, 14, 21, 28)}
    assert all("is broken" in f["error"] and f["status"] == "FAILED" for f in failed.values())

    code, doc, _ = run_json(run_cli, env, "status", str(manifest))
    assert code == 5 and doc["total"]["failed"] == 5 and len(doc["failed"]) == 5

    flag.unlink()  # the cause is fixed
    code, doc, stderr = run_json(run_cli, env, "retry", str(manifest), "--yes", "--wait", *FAST)
    assert code == 0, stderr
    assert doc["total"]["completed"] == 30 and doc["failed"] == []
    with open_ledger(None, tmp_path / "state", readonly=True) as ledger:
        replays = ledger.replays(target_of(engine), [f"backfill-{i}" for i in range(30)])
        runs = {e.key: e.run_id for e in ledger.entries(target_of(engine))}
    assert replays == {key: 1 for key in failed}
    assert {key: f["run_id"] for key, f in failed.items()} == {key: runs[key] for key in failed}  # same run ids

    code, doc, _ = run_json(run_cli, env, "retry", str(manifest), "--yes")  # nothing left to replay
    assert (code, doc["found"], doc["replayed"]) == (0, 0, 0)


def test_cancel_stops_slow_runs_and_status_shows_them_cancelled(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    manifest = launch_manifest(tmp_path / "m.yaml", "slow", 4, seconds=60)
    env = cli_env(engine, tmp_path / "state")
    assert run_cli("apply", str(manifest), "--yes", "--engine", "remote", env=env).exit_code == 0

    code, doc, _ = run_json(run_cli, env, "cancel", str(manifest), "--dry-run")
    assert (code, doc["dry_run"], doc["cancelled"], doc["queued"] + doc["running"]) == (0, True, 0, 4)
    refused = run_cli("cancel", str(manifest), "--engine", "remote", env=env)  # no terminal, no --yes
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    code, doc, stderr = run_json(run_cli, env, "cancel", str(manifest), "--yes")
    assert code == 0, stderr
    assert doc["queued"] + doc["running"] == 4 and doc["cancelled"] == 4

    code, doc, _ = run_json(run_cli, env, "status", str(manifest), "--watch", "--wait-timeout", "30s", *FAST)
    assert code == 5
    assert (doc["total"]["cancelled"], doc["total"]["completed"]) == (4, 0)
    assert {f["status"] for f in doc["failed"]} == {"CANCELLED"}


def test_a_wait_timeout_exits_6_with_the_runs_still_unfinished(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    manifest = launch_manifest(tmp_path / "m.yaml", "sleepy", 2, seconds=30)
    env = cli_env(engine, tmp_path / "state")
    try:
        code, doc, _ = run_json(run_cli, env, "apply", str(manifest), "--yes", "--wait", "--wait-timeout", "1s", *FAST)
        assert code == 6
        assert doc["timed_out"] is True and doc["outcome"] == "unfinished"
        assert doc["total"]["queued"] + doc["total"]["running"] == 2
        code, _, _ = run_json(run_cli, env, "status", str(manifest))
        assert code == 6  # unfinished now
    finally:
        run_cli("cancel", str(manifest), "--yes", "--engine", "remote", env=env)


def test_status_of_manifests_never_applied_counts_nothing(run_cli: RunCli, engine: Engine, tmp_path: Path) -> None:
    manifest = launch_manifest(tmp_path / "m.yaml", "never", 3)
    env = cli_env(engine, tmp_path / "state")
    result = run_cli("status", str(manifest), "--engine", "remote", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == ["never", "0", "0", "0", "0", "0", "0"]


def test_text_status_and_the_board_without_a_terminal(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    flag = tmp_path / "broken"
    flag.write_text("x")
    first = launch_manifest(tmp_path / "a.yaml", "board-a", 6, failing=str(flag), every=3)
    second = launch_manifest(tmp_path / "b.yaml", "board-b", 4)
    env = cli_env(engine, tmp_path / "state")
    result = run_cli("apply", str(first), str(second), "--yes", "--wait", "--engine", "remote", *FAST, env=env)
    assert result.exit_code == 5, result.stderr
    lines = result.stdout.splitlines()
    table = [line.split() for line in lines if line.startswith(("MANIFEST", "board-", "total"))]
    assert table == [
        ["MANIFEST", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "NOT", "FOUND"],
        ["board-a", "0", "0", "4", "2", "0", "0"],
        ["board-b", "0", "0", "4", "0", "0", "0"],
        ["total", "0", "0", "8", "2", "0", "0"],
    ]
    failed = sorted(line.split()[2] for line in lines if line.strip().startswith("failed:"))
    assert failed == ["board-a-0", "board-a-3"]
    board = [line for line in result.stderr.splitlines() if line.startswith("runs: ")]
    assert board and board[-1].startswith("runs: 10/10 finished: 8 completed, 2 failed")
    assert "\x1b" not in result.stderr  # no terminal: plain lines
    assert "some runs failed" in result.stderr


def test_a_secret_an_error_quotes_is_masked_when_allowed(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    flag = tmp_path / "broken"
    flag.write_text("x")
    manifest = launch_manifest(tmp_path / "m.yaml", "secretive", 2, failing=str(flag), every=1)
    text = manifest.read_text().replace(
        '      fail_while: "', '      note: "{{ secret(\'OUTCOME_SECRET\') }}"\n      fail_while: "'
    )
    manifest.write_text(text)
    env = {**cli_env(engine, tmp_path / "state"), "OUTCOME_SECRET": "s3cr3t-value-42"}
    allow = ("--allow-secret", "OUTCOME_SECRET")
    applied = run_cli("apply", str(manifest), "--yes", "--wait", "--engine", "remote", *allow, *FAST, env=env)
    assert applied.exit_code == 5, applied.stderr
    for args in (("status", str(manifest)), ("status", str(manifest), "-o", "json")):
        shown = run_cli(*args, "--engine", "remote", *allow, env=env)
        assert shown.exit_code == 5
        assert "is broken: ***" in shown.stdout
        assert "s3cr3t" not in shown.stdout + shown.stderr
    assert "s3cr3t" not in applied.stdout + applied.stderr
