"""The CI example's jobs, run here step by step (tests/examples/ci_jobs.py): a pull request from a fork, one from
the repository with read-only credentials, the sticky comment, then the merge's plan and apply, and a re-run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hatchet_client.engine import RunStore

from tests.examples.ci_jobs import Context, run_job
from tests.examples.conftest import PASSWORD, Served, git
from tests.net import free_port

HERE = Path(__file__).resolve().parent


def fake_gh(tmp_path: Path, comments: list[dict[str, object]] | None = None) -> tuple[Path, Path]:
    """A bin directory whose `gh` is fake_gh.py, and its state file."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    state = tmp_path / "gh-state.json"
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\nexport FAKE_GH_STATE="{state}"\nexec "{sys.executable}" "{HERE / "fake_gh.py"}" "$@"\n')
    gh.chmod(0o755)
    state.write_text(json.dumps({"comments": comments or [], "calls": [], "next_id": 100}))
    return bin_dir, state


def engine_keys(served_db: Path) -> list[str]:
    store = RunStore(served_db)
    try:
        return [r.additional_metadata["hatchet-manifest/key"] for r in store.list_runs()]
    finally:
        store.close()


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def read_only_env(served: Served) -> dict[str, str]:
    """What the runner needs to reach the test's engine, with gRPC pointed at a closed port: a read-only Hatchet
    token is refused on gRPC, so the plan jobs must get by with the REST API alone."""
    return {"HATCHET_CLIENT_TLS_STRATEGY": "none", "HATCHET_CLIENT_HOST_PORT": f"127.0.0.1:{free_port()}"}


def test_a_fork_pull_request_gets_the_git_diff_and_a_note(repo: Path) -> None:
    job = run_job("plan", repo, Context(), event="pull_request")
    assert job.rc == 0, job.log
    plan = job.step("Plan")
    assert "### This change, compared with `origin/main`" in plan.summary
    assert "bulk-parent-20" in plan.summary and "bulk-parent-21" in plan.summary
    assert "warehouse-load-eu" in plan.summary  # env("REGION"): allowed by the workflow's allow list
    assert "No Hatchet credentials in this job (a pull request from a fork" in plan.summary
    assert "::notice title=hatchet-manifest::No Hatchet credentials" in plan.stdout
    assert plan.outputs == "changes=unknown\n"
    out = repo / "hatchet-plan"
    assert sorted(p.name for p in out.iterdir()) == ["base.md", "comment.md"]
    comment = (out / "comment.md").read_text()
    assert comment.startswith("<!-- hatchet-manifest-plan -->\n## hatchet-manifest plan\n")
    assert "bulk-parent-20" in comment
    upload = job.step("Upload the plan")
    assert upload.with_["path"] == "hatchet-plan/" and upload.with_["if-no-files-found"] == "error"


def test_a_pull_request_plans_against_the_target_with_read_only_access(
    repo: Path, served: Served, ledger: str, tmp_path: Path
) -> None:
    secrets = {"HATCHET_PLAN_TOKEN": served.token, "HATCHET_PLAN_LEDGER": ledger}
    job = run_job("plan", repo, Context(secrets), event="pull_request", extra_env=read_only_env(served))
    assert job.rc == 0, job.log
    plan = job.step("Plan")
    assert plan.outputs == "changes=true\n"  # --detailed-exitcode's 2, not a failure
    assert "### What apply would do" in plan.summary
    saved = json.loads((repo / "hatchet-plan" / "plan.json").read_text())
    # starter example 3, bulk-parent 22, manual-trigger 1, backfill 7, matrix 4, warehouse 1: all new
    assert saved["kind"] == "Plan" and saved["summary"]["create"] == 38 == len(saved["runs"])
    assert PASSWORD not in (repo / "hatchet-plan" / "plan.json").read_text()
    assert not Path(ledger.removeprefix("sqlite:///")).exists()  # a preview writes no ledger

    # The comment job: posted once, then updated in place.
    bin_dir, state = fake_gh(tmp_path, [{"id": 5, "user": {"login": "someone"}, "body": "LGTM"}])
    for _ in range(2):
        comment = run_job("comment", repo, Context(), event="pull_request", path_prefix=[bin_dir])
        assert comment.rc == 0, comment.log
    calls = json.loads(state.read_text())
    assert [(c["method"], c["endpoint"]) for c in calls["calls"]] == [
        ("GET", "repos/acme/pipelines/issues/7/comments?per_page=100"),
        ("POST", "repos/acme/pipelines/issues/7/comments"),
        ("GET", "repos/acme/pipelines/issues/7/comments?per_page=100"),
        ("PATCH", "repos/acme/pipelines/issues/comments/100"),
    ]
    assert [c["id"] for c in calls["comments"]] == [5, 100]
    assert calls["comments"][1]["body"] == (repo / "hatchet-plan" / "comment.md").read_text()
    assert "### What apply would do" in calls["comments"][1]["body"]


def test_an_invalid_manifest_fails_the_plan_and_says_so_in_the_comment(repo: Path) -> None:
    (repo / "manifests" / "bulk-parent.yaml").write_text("apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\n")
    git(repo, "commit", "-qam", "broken")
    job = run_job("plan", repo, Context(), event="pull_request")
    assert job.rc == 1
    assert "bulk-parent.yaml" in job.log
    assert "::error title=hatchet-manifest diff --base origin/main::" in job.log
    assert "**diff --base origin/main failed** (exit code 1)" in (repo / "hatchet-plan" / "comment.md").read_text()


def test_the_merge_is_planned_then_applied_and_a_re_run_sends_nothing_twice(
    repo: Path, served: Served, ledger: str, tmp_path: Path
) -> None:
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "feature")
    plan_secrets = {"HATCHET_PLAN_TOKEN": served.token, "HATCHET_PLAN_LEDGER": ledger}
    apply_secrets = {"HATCHET_CLIENT_TOKEN": served.token, "HATCHET_MANIFEST_LEDGER": ledger}
    apply_secrets["WAREHOUSE_PASSWORD"] = PASSWORD
    engine_env = {"HATCHET_CLIENT_TLS_STRATEGY": "none"}
    fast = {"WAIT_TIMEOUT": "1s", "LOCK_WAIT": "5"}

    planned = run_job("plan-main", repo, Context(plan_secrets), event="push", extra_env=read_only_env(served))
    assert planned.rc == 0, planned.log
    assert planned.step("Plan").outputs == "changes=true\n"
    assert "This change, compared with" not in planned.summary  # no --base on main

    applied = run_job("apply", repo, Context(apply_secrets), event="push", extra_env=engine_env, overrides=fast)
    # No worker runs these workflows here: every run is submitted and still queued when the wait ends.
    assert applied.rc == 6, applied.log
    step = applied.step("Apply and wait")
    assert "::error title=hatchet-manifest apply (exit 6)::Every run is submitted; some were still unfinished" in (
        step.stdout
    )
    assert "### hatchet-manifest apply: exit 6" in step.summary
    assert PASSWORD not in applied.log + applied.summary
    db = served.db
    keys = engine_keys(db)
    assert len(keys) == 38 and len(set(keys)) == 38
    store = RunStore(db)
    try:
        (warehouse,) = [r for r in store.list_runs() if r.workflow_name == "WarehouseLoad"]
    finally:
        store.close()
    assert warehouse.input == {"region": "eu", "dsn": f"postgresql://loader:{PASSWORD}@warehouse/db"}

    # Re-running the job (or running the workflow by hand with resubmit_unknown) sends nothing twice.
    again = run_job(
        "apply",
        repo,
        Context(apply_secrets, inputs={"resubmit_unknown": True}),
        event="workflow_dispatch",
        extra_env=engine_env,
        overrides=fast,
    )
    assert again.rc == 6, again.log
    assert "Apply: 0 to send" in again.log or "nothing to send" in again.log.lower(), again.log
    assert sorted(engine_keys(db)) == sorted(keys)

    replanned = run_job("plan-main", repo, Context(plan_secrets), event="push", extra_env=read_only_env(served))
    assert replanned.rc == 0, replanned.log
    assert replanned.step("Plan").outputs == "changes=false\n"


def test_apply_refuses_to_run_without_its_credentials(repo: Path) -> None:
    job = run_job("apply", repo, Context(), event="push")
    assert job.rc == 1
    assert (
        "::error title=hatchet-manifest apply::HATCHET_CLIENT_TOKEN and HATCHET_MANIFEST_LEDGER must both be set"
        in (job.log)
    )


def test_one_plan_credential_without_the_other_is_an_error(repo: Path) -> None:
    job = run_job("plan", repo, Context({"HATCHET_PLAN_TOKEN": "x"}), event="pull_request")
    assert job.rc == 1
    assert "set both HATCHET_CLIENT_TOKEN and HATCHET_MANIFEST_LEDGER, or neither" in job.log
