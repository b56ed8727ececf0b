"""The CI scripts' own logic: apply.sh's reading of every exit code, install.sh's refusal of the placeholder,
comment.sh's fallback for a plan too long for a comment. (The job runs in test_ci_jobs.py run them for real.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CI = ROOT / "examples" / "ci"
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def stub_cli(bin_dir: Path, rc: int) -> Path:
    """A `hatchet-manifest` that records its arguments and exits `rc`: only apply.sh's own logic is under test."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / "args"
    stub = bin_dir / "hatchet-manifest"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{log}"\nexit {rc}\n')
    stub.chmod(0o755)
    return log


MEANINGS = {
    0: ("notice", "Every run is submitted and has completed."),
    1: ("error", "Nothing was submitted"),
    3: ("error", "Re-run this job to resume: apply is idempotent"),
    4: ("error", "Unexpected exit code (4: an internal error"),
    5: ("error", "hatchet-manifest retry manifests/ --yes --wait"),
    6: ("error", "still unfinished after 10m. Nothing needs sending"),
    130: ("error", "interrupted or cancelled; what was submitted is recorded. Re-run this job"),
    143: ("error", "interrupted or cancelled; what was submitted is recorded. Re-run this job"),
}


@pytest.mark.parametrize("rc", sorted(MEANINGS))
def test_apply_sh_says_what_each_exit_code_means_and_keeps_it(tmp_path: Path, rc: int) -> None:
    args = stub_cli(tmp_path / "bin", rc)
    summary = tmp_path / "summary.md"
    env = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HATCHET_CLIENT_TOKEN": "t",
        "HATCHET_MANIFEST_LEDGER": "postgresql://x/y",
        "GITHUB_STEP_SUMMARY": str(summary),
        "WAIT_TIMEOUT": "10m",
        "RESUBMIT_UNKNOWN": "1" if rc == 3 else "",
    }
    done = subprocess.run([*BASH, str(CI / "apply.sh")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == rc
    level, text = MEANINGS[rc]
    assert done.stdout.startswith(f"::{level} title=hatchet-manifest apply (exit {rc})::")
    assert text in done.stdout and text in summary.read_text()
    expected = ["apply", "manifests/", "--engine", "remote", "--yes", "--lock-wait", "1800"]
    expected += ["--wait", "--wait-timeout", "10m", *(["--resubmit-unknown"] if rc == 3 else [])]
    assert args.read_text().splitlines() == expected


def test_install_sh_refuses_the_placeholder(tmp_path: Path) -> None:
    done = subprocess.run([*BASH, str(CI / "install.sh")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == (
        f"::error file={CI / 'requirements.txt'}::replace OWNER/REPO (and the ref) with the "
        "repository and release of hatchet-manifest to install\n"
    )
    # From the repository's root, as in a job: the path relative to it (an annotation on the file).
    done = subprocess.run([*BASH, "examples/ci/install.sh"], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.startswith("::error file=examples/ci/requirements.txt::replace OWNER/REPO")


def test_install_sh_installs_the_pinned_requirement(tmp_path: Path) -> None:
    """With the placeholder replaced, it runs pip on requirements.txt (here: a stub python, no network)."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "install.sh").write_bytes((CI / "install.sh").read_bytes())
    text = (CI / "requirements.txt").read_text().replace("OWNER/REPO", "acme/hatchet-manifest")
    (scripts / "requirements.txt").write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path / "pip-args"}"\n')
    (bin_dir / "hatchet-manifest").write_text("#!/bin/sh\necho hatchet-manifest, version 0.1.0\n")
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([*BASH, str(scripts / "install.sh")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pip-args").read_text().splitlines() == [
        "-m",
        "pip",
        "install",
        "--no-input",
        "--progress-bar",
        "off",
        "-r",
        str(scripts / "requirements.txt"),
    ]
    assert "hatchet-manifest, version 0.1.0" in done.stdout


def test_comment_sh_links_to_the_summary_when_the_plan_is_too_long(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parent
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"comments": [], "calls": [], "next_id": 1}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(
        f'#!/bin/sh\nexport FAKE_GH_STATE="{state}"\nexec "{sys.executable}" "{here}/fake_gh.py" "$@"\n'
    )
    (bin_dir / "gh").chmod(0o755)
    body = tmp_path / "comment.md"
    body.write_text("<!-- hatchet-manifest-plan -->\n" + "é" * 70_000)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GH_TOKEN": "x",
        "GITHUB_REPOSITORY": "acme/pipelines",
        "PR_NUMBER": "3",
        "GITHUB_RUN_ID": "99",
        "LC_ALL": "C.UTF-8",
    }
    done = subprocess.run([*BASH, str(CI / "comment.sh"), str(body)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    (comment,) = json.loads(state.read_text())["comments"]
    assert comment["body"] == (
        "<!-- hatchet-manifest-plan -->\n## hatchet-manifest plan\n\nThe plan is too long for a comment: it is in the "
        "summary of [the plan job](https://github.com/acme/pipelines/actions/runs/99).\n"
    )


def test_comment_sh_refuses_a_body_without_its_marker(tmp_path: Path) -> None:
    body = tmp_path / "comment.md"
    body.write_text("a plan\n")
    env = {**os.environ, "GITHUB_REPOSITORY": "a/b", "PR_NUMBER": "1"}
    done = subprocess.run([*BASH, str(CI / "comment.sh"), str(body)], capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert "does not hold the plan comment's marker" in done.stderr
