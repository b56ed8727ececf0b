"""The CI example as files: packaged for `init` unchanged, linted (actionlint, shellcheck), and holding to the rules
its README states (pinned actions, least privilege, timeouts, the approval gate, concurrency that drops nothing)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from hatchet_manifest.starter import ci_files
from tests.conftest import ROOT
from tests.examples.ci_jobs import EXPRESSION, WORKFLOW, load_workflow, run_blocks

CI = ROOT / "examples" / "ci"
SCRIPTS = sorted(CI.glob("*.sh"))
STARTER = ROOT / "hatchet_manifest" / "starter"
PIN = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def linter(name: str) -> str:
    """The linter's path; a skip where it is missing, but a failure in CI (HATCHET_MANIFEST_REQUIRE_LINTERS=1)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        reason = f"{name} is not installed (bash .ci/run installs it: see the linters it installs)"
        if os.environ.get("HATCHET_MANIFEST_REQUIRE_LINTERS") == "1":
            pytest.fail(f"{reason}; HATCHET_MANIFEST_REQUIRE_LINTERS=1")
        pytest.skip(reason)
    return found


def test_the_packaged_copy_is_examples_ci() -> None:
    shipped = ci_files()
    assert shipped == {p.name: p.read_bytes() for p in CI.iterdir()}
    assert sorted(shipped) == sorted(p.name for p in (STARTER / "ci").iterdir())


def test_the_package_data_globs_ship_every_starter_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["hatchet_manifest.starter"]
    for path in [*(STARTER / "ci").iterdir(), *(STARTER / "files").iterdir()]:
        rel = path.relative_to(STARTER).as_posix()
        assert any(fnmatch(rel, g) for g in globs), rel


def test_actionlint_passes_the_workflow() -> None:
    # actionlint runs shellcheck on every `run:` script too, when shellcheck is on PATH (checked just below).
    actionlint = linter("actionlint")
    linter("shellcheck")
    done = subprocess.run([actionlint, "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    actionlint = linter("actionlint")
    linter("shellcheck")
    broken = WORKFLOW.read_text().replace("timeout-minutes: 90", "timeout-minutes: ninety")
    broken = broken.replace("run: bash .github/hatchet-manifest/apply.sh", "run: echo $UNQUOTED_${{ github.head_ref }}")
    (tmp_path / "broken.yaml").write_text(broken)
    done = subprocess.run([actionlint, "-no-color", str(tmp_path / "broken.yaml")], capture_output=True, text=True)
    assert done.returncode == 1
    assert "timeout-minutes" in done.stdout and "github.head_ref" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_passes_the_scripts(script: Path) -> None:
    shellcheck = linter("shellcheck")
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in script.read_text()
    assert os.access(script, os.X_OK)
    done = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_passes_every_run_block(tmp_path: Path) -> None:
    shellcheck = linter("shellcheck")
    for i, (job, name, script) in enumerate(run_blocks(load_workflow())):
        path = tmp_path / f"{job}-{i}.sh"
        path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)
        done = subprocess.run([shellcheck, "--severity=style", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{job}/{name}: {done.stdout}"


def test_run_blocks_expand_no_expression_and_use_the_scripts() -> None:
    for job, name, script in run_blocks(load_workflow()):
        assert not EXPRESSION.search(script), f"{job}/{name}"
        assert re.fullmatch(r"bash \.github/hatchet-manifest/[a-z]+\.sh( .*)?\n?", script), f"{job}/{name}: {script}"
        assert (CI / script.split()[1].rsplit("/", 1)[1]).exists()


def test_the_workflow_keeps_its_promises() -> None:
    wf = load_workflow()
    jobs = wf["jobs"]
    assert wf["permissions"] == {}
    assert wf["defaults"]["run"]["shell"] == "bash"
    assert set(wf["on"]) == {"pull_request", "push", "workflow_dispatch"}
    for name, job in jobs.items():
        assert isinstance(job["timeout-minutes"], int) and job["timeout-minutes"] <= 90, name
        assert job["permissions"].get("contents") == "read", name
        for step in job["steps"]:
            if "uses" in step:
                assert PIN.match(step["uses"]), f"{name}: {step['uses']} is not pinned to a commit"
                if step["uses"].startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, name
    # Write access: pull requests only in the comment job; nothing else writes anywhere.
    for name, job in jobs.items():
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        assert writes == ({"pull-requests"} if name == "comment" else set()), name
    # The plan jobs hold read-only credentials only; the apply job's come from its environment.
    for name in ("plan", "plan-main"):
        assert jobs[name]["env"] == {
            "HATCHET_CLIENT_TOKEN": "${{ secrets.HATCHET_PLAN_TOKEN }}",
            "HATCHET_MANIFEST_LEDGER": "${{ secrets.HATCHET_PLAN_LEDGER }}",
        }
    apply = jobs["apply"]
    assert apply["environment"] == "hatchet-production"
    assert apply["env"]["HATCHET_CLIENT_TOKEN"] == "${{ secrets.HATCHET_CLIENT_TOKEN }}"
    assert apply["concurrency"] == {"group": "hatchet-manifest-apply-${{ github.sha }}", "cancel-in-progress": False}
    assert apply["needs"] == "plan-main" and apply["if"] == "github.ref == 'refs/heads/main'"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in jobs["comment"]["if"]
    assert jobs["plan"]["concurrency"]["cancel-in-progress"] is True
    # Every job installs the same pinned requirements, with the pip cache keyed on them.
    for name, job in jobs.items():
        if name == "comment":
            continue
        (setup,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert setup["with"]["cache"] == "pip"
        assert setup["with"]["cache-dependency-path"] == ".github/hatchet-manifest/requirements.txt"
        assert any(s.get("run") == "bash .github/hatchet-manifest/install.sh" for s in job["steps"]), name
    # The allow lists are the workflow's, the same for every job.
    assert wf["env"]["HATCHET_MANIFEST_ALLOW_ENV"] == "REGION"
    assert wf["env"]["HATCHET_MANIFEST_ALLOW_SECRETS"] == "WAREHOUSE_PASSWORD"


def test_the_requirements_pin_a_git_ref_behind_a_placeholder() -> None:
    lines = [line for line in (CI / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines == ["hatchet-manifest @ git+https://github.com/OWNER/REPO@v0.1.0"]


def test_the_flags_the_scripts_use_exist() -> None:
    """Every `--flag` the scripts pass to hatchet-manifest is in that command's --help (the job runs prove they
    work; this names the one that went missing)."""
    used: dict[str, set[str]] = {}
    for script in SCRIPTS:
        text = script.read_text()
        for command in ("diff", "apply", "retry", "status"):
            for m in re.finditer(rf"hatchet-manifest {command} [^\n]*|\((apply) [^)]*\)", text):
                if m.group(0).startswith("(") and command != "apply":
                    continue
                used.setdefault(command, set()).update(re.findall(r"(?<![\w-])--[a-z-]+", m.group(0)))
        used.setdefault("apply", set()).update(re.findall(r"args\+=\((--[a-z-]+)\)", text))
    assert used["diff"] >= {"--base", "--engine", "--detailed-exitcode", "--out"}
    assert used["apply"] >= {"--engine", "--yes", "--lock-wait", "--wait", "--wait-timeout", "--resubmit-unknown"}
    for command, flags in used.items():
        help_text = subprocess.run(
            [sys.executable, "-m", "hatchet_manifest", command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        for flag in flags:
            assert re.search(rf"(?<![\w-]){flag}\b", help_text), f"{command} {flag}"
