"""`diff` is a preview: it takes no lock and writes nothing, and still shows what `apply` will do."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hatchet_manifest.ledger import open_ledger
from tests.apply.conftest import cli_args
from tests.conftest import ROOT


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_args(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def _rows(state: Path) -> list[tuple[str, str, str | None]]:
    with open_ledger(None, state) as ledger:
        return sorted((e.key, e.state, e.run_id) for t in ledger.targets() for e in ledger.entries(t))


def test_diff_is_not_blocked_by_a_running_apply(repo: Path, engine: dict[str, str]) -> None:
    first = run(engine, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "s")
    assert first.returncode == 0, first.stderr
    before = _rows(repo / "s")
    with open_ledger(None, repo / "s") as ledger, ledger.lock(ledger.targets()[0]):  # as an apply holds it
        diff = run(engine, repo, "diff", "manifests", "--engine", "remote", "--state-dir", "s", "--lock-wait", "0")
        apply = run(engine, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "s")
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines()[-1] == "Plan: 0 to create, 0 changed, 32 unchanged, 0 removed, 0 unknown."
    assert apply.returncode == 1 and "lock" in apply.stderr  # apply, which writes, does wait for it
    assert _rows(repo / "s") == before


def test_diff_adopts_nothing_but_plans_what_apply_will_adopt(repo: Path, engine: dict[str, str]) -> None:
    first = run(engine, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "a")
    assert first.returncode == 0, first.stderr
    diff = run(engine, repo, "diff", "manifests", "--engine", "remote", "--state-dir", "b")
    assert diff.stdout.splitlines()[-1] == "Plan: 0 to create, 0 changed, 32 unchanged, 0 removed, 0 unknown."
    assert "32 were found there (apply records them in the ledger)" in diff.stderr
    assert _rows(repo / "b") == []
    apply = run(engine, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "b")
    assert apply.returncode == 0 and "0 submitted" in apply.stdout
    assert len(_rows(repo / "b")) == 32


def test_diff_settles_runs_of_unknown_fate_without_writing(repo: Path, engine: dict[str, str]) -> None:
    crash_env = {**engine, "HATCHET_MANIFEST_CRASH_AT": "before-outcome:0"}
    crashed = run(crash_env, repo, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "s")
    assert crashed.returncode != 0
    pending = [row for row in _rows(repo / "s") if row[1] == "pending"]
    assert pending  # the chunk was sent, its outcome never recorded
    diff = run(
        engine, repo, "diff", "manifests", "--engine", "remote", "--state-dir", "s", "--settle-grace", "0"
    )  # fmt: skip
    assert diff.returncode == 0, diff.stderr
    assert "were found in the engine; apply will record them" in diff.stderr
    assert " 0 unknown." in diff.stdout.splitlines()[-1]
    assert [row for row in _rows(repo / "s") if row[1] == "pending"] == pending  # nothing written


def test_diff_of_a_fresh_state_dir_creates_nothing(repo: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo)}
    diff = run(env, repo, "diff", "manifests", "--detailed-exitcode")
    assert diff.returncode == 2, diff.stderr
    assert diff.stdout.splitlines()[-1] == "Plan: 32 to create, 0 changed, 0 unchanged, 0 removed, 0 unknown."
    assert "none yet at .hatchet-manifest/engine.db: every run is new" in diff.stderr
    assert not (repo / ".hatchet-manifest").exists()
    saved = run(env, repo, "diff", "manifests", "--out", "plan.json")  # a plan needs a target: it is made then
    assert saved.returncode == 0 and (repo / "plan.json").exists() and (repo / ".hatchet-manifest").exists()


def test_diff_reads_an_existing_ledger_without_writing_it(repo: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo)}
    assert run(env, repo, "apply", "manifests", "--yes").returncode == 0
    ledger = repo / ".hatchet-manifest" / "ledger.db"
    before = ledger.stat().st_mtime_ns, ledger.read_bytes()
    diff = run(env, repo, "diff", "manifests")
    assert diff.returncode == 0 and diff.stdout.splitlines()[-1].startswith("Plan: 0 to create")
    assert (ledger.stat().st_mtime_ns, ledger.read_bytes()) == before


def test_diff_out_to_a_missing_directory_is_a_clear_error(repo: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo)}
    result = run(env, repo, "diff", "manifests", "--out", str(repo / "missing" / "plan.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert f"--out {repo}/missing/plan.json: cannot write the plan: No such file or directory" in result.stderr
