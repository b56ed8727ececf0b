"""Runs the jobs of examples/ci/hatchet-manifest.yaml on this machine, as a GitHub runner would run their steps.

Each `run:` block is executed verbatim with the workflow's shell (`bash --noprofile --norc -eo pipefail`), in a
repository laid out by `init`, with the environment GitHub would give it: the workflow's, the job's and the step's
`env:`, `GITHUB_*` variables, and a step summary and output file per step. The only `${{ }}` expressions allowed
are those in `env:` values that `Context` knows (secrets, the token, inputs, the pull request's number): any other
one fails the test, so the workflow cannot grow an expression these tests do not model. `uses:` steps are the
GitHub actions themselves (checkout, setup-python, artifacts): they are recorded, not run; the install step is
left out (the tool under test is installed already; install.sh is tested on its own).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

WORKFLOW = ROOT / "examples" / "ci" / "hatchet-manifest.yaml"
SHELL = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SKIPPED_RUNS = ("install.sh",)
# What a job inherits from this machine: the interpreter's and the shell's basics, never HATCHET_* or CI.
INHERITED = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER", "SHELL", "PYTHONPATH")


def load_workflow() -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as true
        doc["on"] = doc.pop(True)
    return doc


def run_blocks(workflow: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(job, step name, script) of every `run:` step."""
    return [
        (job_name, step.get("name", ""), step["run"])
        for job_name, job in workflow["jobs"].items()
        for step in job["steps"]
        if "run" in step
    ]


@dataclass
class Context:
    """The values of the expressions the workflow's `env:` blocks use."""

    secrets: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    pr_number: int = 7

    def evaluate(self, expression: str) -> str:
        if m := re.fullmatch(r"secrets\.([A-Z0-9_]+)", expression):
            return self.secrets.get(m.group(1), "")  # a secret that is not set is empty, as on GitHub
        if expression == "github.token":
            return "ghs_test_token"
        if expression == "github.event.pull_request.number":
            return str(self.pr_number)
        if expression == "inputs.resubmit_unknown && '1' || ''":
            return "1" if self.inputs.get("resubmit_unknown") else ""
        raise AssertionError(f"the workflow uses an expression these tests do not model: ${{{{ {expression} }}}}")

    def expand(self, value: object) -> str:
        return EXPRESSION.sub(lambda m: self.evaluate(m.group(1)), str(value))


@dataclass
class Step:
    name: str
    uses: str | None
    rc: int | None  # None: not run (a `uses:` step, or the install step)
    stdout: str = ""
    stderr: str = ""
    summary: str = ""
    outputs: str = ""
    with_: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobRun:
    steps: list[Step]

    @property
    def rc(self) -> int:
        """The exit code of the last step run (0 when every step passed)."""
        ran = [s for s in self.steps if s.rc is not None]
        return ran[-1].rc if ran and ran[-1].rc is not None else 0

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)

    @property
    def log(self) -> str:
        return "".join(s.stdout + s.stderr for s in self.steps)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def github_env(event: str, repo: Path, tmp: Path) -> dict[str, str]:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REPOSITORY": "acme/pipelines",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SHA": sha.stdout.strip(),
        "GITHUB_WORKSPACE": str(repo),
        "RUNNER_TEMP": str(tmp),
    }
    if event == "pull_request":
        env |= {"GITHUB_BASE_REF": "main", "GITHUB_HEAD_REF": "feature", "GITHUB_REF": "refs/pull/7/merge"}
    else:
        env["GITHUB_REF"] = "refs/heads/main"
    return env


def run_job(
    job_name: str,
    repo: Path,
    context: Context,
    *,
    event: str,
    extra_env: dict[str, str] | None = None,
    overrides: dict[str, str] | None = None,
    path_prefix: list[Path] | None = None,
) -> JobRun:
    """Run `job_name`'s steps in `repo` until one fails. `extra_env`: what the runner's machine adds (e.g. how
    to reach the test's engine); `overrides`: replace values of the job's own `env:` (e.g. a shorter wait)."""
    workflow = load_workflow()
    job = workflow["jobs"][job_name]
    tmp = repo.parent / f"runner-{job_name}"
    tmp.mkdir(exist_ok=True)
    path = [*(path_prefix or []), Path(sys.executable).parent, *map(Path, os.environ["PATH"].split(os.pathsep))]
    base = {k: os.environ[k] for k in INHERITED if k in os.environ}
    base["PATH"] = os.pathsep.join(map(str, path))
    base |= github_env(event, repo, tmp)
    base |= {k: context.expand(v) for k, v in workflow.get("env", {}).items()}
    base |= {k: context.expand(v) for k, v in job.get("env", {}).items()}
    base |= overrides or {}
    base |= extra_env or {}
    steps: list[Step] = []
    for i, spec in enumerate(job["steps"]):
        name = spec.get("name", spec.get("uses", f"step {i}"))
        if "uses" in spec:
            steps.append(Step(name, spec["uses"], None, with_=spec.get("with", {})))
            continue
        script: str = spec["run"]
        assert not EXPRESSION.search(script), f"{job_name}/{name}: a ${{{{ }}}} expression inside a shell script"
        if any(skipped in script for skipped in SKIPPED_RUNS):
            steps.append(Step(name, None, None))
            continue
        summary, outputs = tmp / f"summary-{i}.md", tmp / f"output-{i}"
        summary.write_text("")
        outputs.write_text("")
        env = base | {k: context.expand(v) for k, v in spec.get("env", {}).items()}
        env |= {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)}
        (tmp / f"step-{i}.sh").write_text(script)
        done = subprocess.run(
            [*SHELL, str(tmp / f"step-{i}.sh")],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        steps.append(
            Step(name, None, done.returncode, done.stdout, done.stderr, summary.read_text(), outputs.read_text())
        )
        if done.returncode != 0:
            break
    return JobRun(steps)
