"""examples/gitlab/.gitlab-ci.yml: its rules and gates, its shell lines shellcheck-clean, and the merge request's
plan job run here (its `script:` lines verbatim, in a repository with the scripts where the example puts them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.examples.conftest import git
from tests.examples.test_ci_example import linter

GITLAB = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
SCRIPTS = ("requirements.txt", "install.sh", "plan.sh", "apply.sh", "ledger-roles.sql")


def load() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    return doc


def job(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The job with its `extends:` merged in (one level, as these templates are)."""
    spec = dict(doc[name])
    for parent in reversed(spec.pop("extends", []) if isinstance(spec.get("extends"), list) else [spec.pop("extends")]):
        spec = {**doc[parent], **spec}
    return spec


def test_the_gitlab_pipeline_keeps_its_promises() -> None:
    doc = load()
    assert doc["variables"]["HATCHET_MANIFEST_ALLOW_ENV"] == "REGION"
    assert doc["variables"]["HATCHET_MANIFEST_ALLOW_SECRETS"] == "WAREHOUSE_PASSWORD"
    plan, plan_main, apply = job(doc, "plan"), job(doc, "plan-main"), job(doc, "apply")
    assert plan["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert plan["interruptible"] is True
    assert apply["interruptible"] is False and apply["allow_failure"] is False
    assert apply["resource_group"] == "hatchet-production"
    assert apply["environment"]["name"] == "hatchet-production"
    assert apply["needs"] == ["plan-main"]
    assert all(rule["when"] == "manual" for rule in apply["rules"])
    assert all("$CI_DEFAULT_BRANCH" in rule["if"] for rule in apply["rules"] + plan_main["rules"])
    # The writing credentials are never named in a job's definition: they come from the environment's scope.
    for name in ("plan", "plan-main"):
        text = yaml.safe_dump(job(doc, name))
        assert "HATCHET_PLAN_TOKEN" in text and "$HATCHET_CLIENT_TOKEN" not in text, name
    for spec in (plan, plan_main, apply):
        assert spec["before_script"] == ['bash "$HM_DIR/install.sh"']
        assert spec["cache"]["key"]["files"] == [".gitlab/hatchet-manifest/requirements.txt"]
        assert re.fullmatch(r"\d+m", spec["timeout"])
    for spec in (plan, plan_main):
        assert spec["artifacts"]["paths"] == ["hatchet-plan/"] and spec["artifacts"]["when"] == "always"
    assert (ROOT / "examples" / "ci" / "apply.sh").exists()


def test_shellcheck_passes_the_gitlab_script_lines(tmp_path: Path) -> None:
    shellcheck = linter("shellcheck")
    doc = load()
    for name in ("plan", "plan-main", "apply"):
        spec = job(doc, name)
        path = tmp_path / f"{name}.sh"
        path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + "\n".join(spec["before_script"] + spec["script"]))
        done = subprocess.run([shellcheck, "--severity=style", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stdout}"


def test_the_merge_request_plan_job_runs_its_script_lines(repo: Path) -> None:
    """A fork's merge request: no variables. The fetch of the target branch is real (from `origin`, here the
    repository itself), and so are the diff --base and the note."""
    scripts = repo / ".gitlab" / "hatchet-manifest"
    scripts.mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy2(ROOT / "examples" / "ci" / name, scripts / name)
    git(repo, "remote", "add", "origin", str(repo))
    git(repo, "update-ref", "-d", "refs/remotes/origin/main")  # the job fetches it
    doc = load()
    spec = job(doc, "plan")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "CI", "GITHUB_"))}
    env |= {k: str(v).replace("$CI_PROJECT_DIR", str(repo)) for k, v in doc["variables"].items()}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_JOB_URL": "https://gitlab.example.com/acme/pipelines/-/jobs/17",
        "CI_PROJECT_DIR": str(repo),
    }
    script = "\n".join(spec["script"])  # before_script (the install) left out: the tool is installed here
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bulk-parent-20" in done.stdout
    assert "::notice title=hatchet-manifest::No Hatchet credentials in this job" in done.stdout
    comment = (repo / "hatchet-plan" / "comment.md").read_text()
    assert "([run](https://gitlab.example.com/acme/pipelines/-/jobs/17))" in comment
    assert sorted(p.name for p in (repo / "hatchet-plan").iterdir()) == ["base.md", "comment.md"]
