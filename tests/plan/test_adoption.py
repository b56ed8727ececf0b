"""Runs found in the engine by their stamps are planned by what the engine holds, and targets are engines, not
paths. Applies and diffs are real subprocesses against an engine served by `hatchet-manifest engine serve`."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from hatchet_client import ClientConfig, Hatchet
from hatchet_client.engine import RunStore

from hatchet_manifest.plan.target import choose_mode
from tests.apply.conftest import cli_args
from tests.conftest import ROOT


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_args(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def plan_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    return proc.stdout.splitlines()[-1]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def _change_inputs(repo: Path) -> None:
    path = repo / "manifests" / "bulk-parent.yaml"
    path.write_text(path.read_text().replace('n: "{{ i }}"', 'n: "{{ i + 100 }}"'))


def test_an_adopted_run_carries_the_digest_the_engine_holds(repo: Path, engine: dict[str, str]) -> None:
    first = run(engine, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "runner-1")
    assert first.returncode == 0, first.stderr
    _change_inputs(repo)

    diff = run(engine, repo, "diff", "manifests", "--engine", "remote", "--state-dir", "runner-2")
    assert plan_line(diff) == "Plan: 0 to create, 20 changed, 12 unchanged, 0 removed, 0 unknown."

    # A fresh runner's apply adopts the runs with the engine's digests: the change stays visible afterwards...
    second = run(engine, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "runner-3")
    assert second.returncode == 0, second.stderr
    again = run(
        engine, repo, "diff", "manifests", "--engine", "remote", "--state-dir", "runner-3", "--no-engine-lookup"
    )
    assert plan_line(again) == "Plan: 0 to create, 20 changed, 12 unchanged, 0 removed, 0 unknown."

    # ...and --resubmit-changed sends exactly the changed runs.
    resend = run(
        engine, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "runner-3",
        "--resubmit-changed",
    )  # fmt: skip
    assert resend.returncode == 0, resend.stderr
    store = RunStore(engine["ENGINE_DB"])
    try:
        inputs = Counter(r.input["n"] for r in store.list_runs("BulkParent"))
    finally:
        store.close()
    assert sum(inputs.values()) == 40 and all(inputs[i + 100] == 1 for i in range(20))


def test_runs_stamped_without_a_digest_are_compared_without_the_keys_the_engine_adds(
    repo: Path, engine: dict[str, str]
) -> None:
    """Runs applied by an older version carry only the key and manifest stamps; the engine adds its own keys
    (a traceparent on every run). Those runs are compared by their content, ignoring what the tool did not set."""
    config = ClientConfig(environ=engine)
    hatchet = Hatchet(config)
    try:
        hatchet.admin.run_workflows(
            [
                {
                    "workflow_name": "BulkParent",
                    "input": {"n": i},
                    "options": {
                        "additional_metadata": {
                            "bulk-trigger": str(i),
                            f"hello-{i}": f"earth-{i}",
                            "hatchet-manifest/key": f"bulk-parent-{i}",
                            "hatchet-manifest/manifest": "bulk-parent",
                        }
                    },
                }
                for i in range(20)
            ]
        )
    finally:
        hatchet.admin.close()
    diff = run(engine, repo, "diff", "manifests/bulk-parent.yaml", "--engine", "remote", "--state-dir", "fresh")
    assert plan_line(diff) == "Plan: 0 to create, 0 changed, 20 unchanged, 0 removed, 0 unknown."
    _change_inputs(repo)
    diff = run(engine, repo, "diff", "manifests/bulk-parent.yaml", "--engine", "remote", "--state-dir", "fresh")
    assert plan_line(diff) == "Plan: 0 to create, 20 changed, 0 unchanged, 0 removed, 0 unknown."


def test_moving_the_state_dir_keeps_the_target(repo: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo)}
    first = run(env, repo, "apply", "manifests", "--yes", "--state-dir", "state-a")
    assert first.returncode == 0, first.stderr
    (repo / "state-a").rename(repo / "moved")
    second = run(env, repo, "apply", "manifests", "--yes", "--state-dir", "moved")
    assert second.returncode == 0, second.stderr
    assert "0 submitted" in second.stdout and "32 unchanged" in second.stdout
    store = RunStore(repo / "moved" / "engine.db")
    try:
        assert len(list(store.list_runs())) == 32
    finally:
        store.close()


@pytest.mark.parametrize("value", ["false", "0", "", "FALSE", "no"])
def test_ci_set_to_a_false_value_is_not_ci(value: str) -> None:
    assert choose_mode("auto", {"CI": value}) == "embedded"


@pytest.mark.parametrize("value", ["true", "1", "yes", "github"])
def test_ci_refuses_the_embedded_fallback(value: str) -> None:
    from hatchet_manifest.errors import ConfigError

    with pytest.raises(ConfigError, match="CI is set but HATCHET_CLIENT_TOKEN is not"):
        choose_mode("auto", {"CI": value})
