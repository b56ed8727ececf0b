"""diff and apply through the real CLI against the embedded engine (real gRPC on loopback, real SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_a_second_apply_is_told_who_holds_the_lock_and_may_wait(project: Path, run_cli: RunCli) -> None:
    assert run_cli("apply", "manifests/manual-trigger.yaml", "--yes").exit_code == 0
    with open_ledger(None, STATE) as ledger:
        (target,) = ledger.targets()
        held = ledger.lock(target)
        held.__enter__()
        busy = run_cli("apply", "manifests", "--yes")
        assert busy.exit_code == 1
        assert f"the ledger for target {target.id} is locked (held by host" in busy.stderr
        assert engine_runs(STATE) and len(engine_runs(STATE)) == 1
        # A real process that waits; the lock is released once it says it waits (however long it took to start).
        waiter = subprocess.Popen(
            [sys.executable, "-m", "hatchet_manifest", "apply", "manifests", "--yes", "--lock-wait", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert waiter.stderr is not None
        said = []
        for line in waiter.stderr:
            said.append(line)
            if "waiting up to 30s for the ledger lock" in line:
                break
        held.__exit__(None, None, None)
        _, rest = waiter.communicate(timeout=120)
    stderr = "".join(said) + (rest or "")
    assert waiter.returncode == 0, stderr
    assert "waiting up to 30s for the ledger lock" in stderr and "got the ledger lock" in stderr
    assert len(engine_runs(STATE)) == EXAMPLES


def test_rps_limits_the_rate_and_must_be_positive(project: Path, run_cli: RunCli) -> None:
    result = run_cli("apply", "manifests/bulk-parent.yaml", "--yes", "--rps", "0")
    assert result.exit_code == 2
    assert "--rps" in result.stderr
    code, data, _ = apply(run_cli, "--rps", "5000", "--batch-size", "5", path="manifests/bulk-parent.yaml")
    assert (code, data["submitted"]) == (0, 20)  # the pacing itself is tested on a fake clock (tests/sdk)


@pytest.mark.parametrize("option", ["--warn-age", "--lookup-window"])
def test_a_bad_duration_is_a_usage_error_before_any_work(project: Path, run_cli: RunCli, option: str) -> None:
    result = run_cli("diff", "manifests/bulk-parent.yaml", option, "7x")
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': bad duration '7x': use e.g. 90m, 12h, 30d, 2w" in result.stderr
    assert result.stdout == "" and not STATE.exists()  # nothing rendered, no engine started


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_first_pass_of_an_apply_shows_its_progress(project: Path, run_cli: RunCli, workers: str) -> None:
    env = {"HATCHET_MANIFEST_PROGRESS_AFTER": "0", "HATCHET_MANIFEST_PARALLEL_THRESHOLD": "0"}
    result = run_cli(
        "apply", "manifests/bulk-parent.yaml", "--yes", "--set", "count=3000", "--workers", workers, env=env
    )
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("checked ")]
    assert lines, result.stderr
    assert lines[-1] == "checked 3000/3000 runs (100%): rendered, validated and planned, none sent yet"
    first = result.stderr.index(lines[0])
    assert first < result.stderr.index("sent 3000/3000")  # before anything is sent
