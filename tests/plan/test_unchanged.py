"""Manifests unchanged since they were applied are planned without being rendered (the ledger's record of them
holds), through the real CLI against the embedded engine, on SQLite and PostgreSQL ledgers: the shortcut is taken
when nothing changed (the note on stderr says so) and prints what the full comparison (--refresh) prints; every
input of a render, changed alone, is noticed (the manifest is rendered and compared again, and the plan is the full
one); what lists every run renders every manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import hatchet_manifest
from hatchet_manifest.ledger import PendingRow, open_ledger
from tests.apply.conftest import cli_args
from tests.conftest import CliResult, RunCli

STATE = Path(".hatchet-manifest")
INPUTS = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {name: inputs}
vars: {count: 3, region: eu}
runs:
  - workflow_name: Report
    for_each: "{{ range(count) }}"
    as: i
    key: "report-{{ i }}"
    input:
      n: "{{ i }}"
      region: "{{ region }}"
      day: "{{ env('REPORT_DAY', 'monday') }}"
      token: "{{ secret('REPORT_TOKEN') }}"
  - workflow_name: Audit
    key: audit
    input_schema: ../schemas/audit.json
    input: {level: 1}
"""
STATIC = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {name: static}
runs:
  - workflow_name: Static
    for_each: [a, b]
    key: "static-{{ item }}"
    input: {x: "{{ item }}"}
"""
REPORT_SCHEMA = {
    "type": "object",
    "properties": {"n": {"$ref": "#/$defs/count"}, "region": {"type": "string"}},
    "$defs": {"count": {"type": "integer", "minimum": 0}},
}
ARGS = ("-f", "values.yaml", "--allow-env", "REPORT_DAY", "--allow-secret", "REPORT_TOKEN")
BOTH = "note: 2 manifests unchanged since applied (6 runs, not rendered again"
STATIC_ONLY = "note: 1 manifest unchanged since applied (2 runs, not rendered again"
INPUTS_ONLY = "note: 1 manifest unchanged since applied (4 runs, not rendered again"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The ledger every command uses: the state dir's SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url = str(request.getfixturevalue("pg_url"))
    monkeypatch.setenv("HATCHET_MANIFEST_LEDGER", url)
    return url


@pytest.fixture
def inputs_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two manifests: `inputs` reads every kind of input (values, --set, env(), secret(), a workflow's schema with a
    $ref, an input_schema: path); `static` reads none of its own."""
    for old in Path("manifests").iterdir():
        old.unlink()
    Path("manifests/inputs.yaml").write_text(INPUTS)
    Path("manifests/static.yaml").write_text(STATIC)
    Path("schemas/inputs/Report.json").write_text(json.dumps(REPORT_SCHEMA))
    Path("schemas/audit.json").write_text('{"type": "object", "properties": {"level": {"type": "integer"}}}')
    Path("values.yaml").write_text("region: eu\n")
    monkeypatch.setenv("REPORT_TOKEN", "tok-1234")
    monkeypatch.delenv("REPORT_DAY", raising=False)
    return project


def diff(run_cli: RunCli, *extra: str) -> CliResult:
    return run_cli("diff", "manifests/", *ARGS, "--detailed-exitcode", *extra)


def apply(run_cli: RunCli, *extra: str) -> CliResult:
    result = run_cli("apply", "manifests/", *ARGS, "--yes", *extra)
    assert result.exit_code == 0, result.stderr
    return result


def same_as_full(run_cli: RunCli, *extra: str) -> CliResult:
    """The diff, which must print what the full comparison prints (stdout, exit code)."""
    fast, full = diff(run_cli, *extra), diff(run_cli, *extra, "--refresh")
    assert "unchanged since applied" not in full.stderr
    assert (fast.exit_code, fast.stdout) == (full.exit_code, full.stdout), (fast.stderr, full.stderr)
    return fast


def notes(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if "unchanged since applied" in line]


def without_time(text: str) -> str:
    return re.sub(r" in \d+\.\ds\.$", "", text.strip())


def test_nothing_changed_skips_every_manifest_with_the_full_plans_output(
    inputs_project: Path, run_cli: RunCli, ledger_url: str | None
) -> None:
    assert "unchanged since applied" not in apply(run_cli).stderr  # the first apply renders (and records) both
    result = same_as_full(run_cli)
    assert result.exit_code == 0
    assert result.stdout == "Plan: 0 to create, 0 changed, 6 unchanged, 0 removed, 0 unknown.\n"
    assert notes(result)[0].startswith(BOTH) and "--refresh renders and compares every manifest" in notes(result)[0]

    markdown = same_as_full(run_cli, "-o", "markdown")
    assert "| inputs | 0 | 0 | 0 | 0 | 4 |\n| static | 0 | 0 | 0 | 0 | 2 |" in markdown.stdout
    assert notes(markdown)[0].startswith(BOTH)

    fast, full = apply(run_cli), apply(run_cli, "--refresh")
    assert notes(fast)[0].startswith(BOTH) and not notes(full)
    assert without_time(fast.stdout) == without_time(full.stdout)
    assert "Apply: 0 to send: 0 submitted, 0 failed, 0 unknown; 6 unchanged," in fast.stdout
    fast_json = json.loads(apply(run_cli, "-o", "json").stdout)
    full_json = json.loads(apply(run_cli, "-o", "json", "--refresh").stdout)
    assert fast_json.pop("seconds") >= 0 and full_json.pop("seconds") >= 0
    assert fast_json == full_json and fast_json["plan"] == {"unchanged": 6}

    dry = run_cli("apply", "manifests/", *ARGS, "--dry-run")
    assert dry.stdout == result.stdout and notes(dry)[0].startswith(BOTH)


def test_what_lists_every_run_renders_every_manifest(inputs_project: Path, run_cli: RunCli) -> None:
    apply(run_cli)
    for extra in (("-o", "json"), ("--show-unchanged",), ("--out", "plan.json")):
        result = diff(run_cli, *extra)
        assert result.exit_code == 0 and not notes(result), extra
    assert len(json.loads(diff(run_cli, "-o", "json").stdout)["runs"]) == 6
    assert diff(run_cli, "--show-unchanged").stdout.count("= ") == 6
    assert not notes(run_cli("apply", "manifests/", *ARGS, "--dry-run", "-o", "json"))


def _edit(path: str, old: str, new: str) -> Callable[[], None]:
    def change() -> None:
        text = Path(path).read_text()
        assert old in text
        Path(path).write_text(text.replace(old, new))

    return change


def _setenv(name: str, value: str) -> Callable[[pytest.MonkeyPatch], None]:
    def change(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(name, value)

    return change


def _foreign_write(write: str) -> Callable[[str | None], None]:
    """A write to the ledger by another process (another machine's apply, a `ledger` command), through the ledger's
    own API: what the shortcut's record must notice."""

    def change(url: str | None) -> None:
        with open_ledger(url, STATE) as ledger:
            target = ledger.targets()[0]
            row = PendingRow("report-0" if write == "changed" else "report-2", "0" * 64, "inputs", "m.yaml")
            ledger.record_pending(target, [row], replace_submitted=True)
            if write == "changed":  # another apply resubmitted report-0 with other content
                ledger.record_submitted(target, [("report-0", "run-elsewhere")])
            # else: a run of another apply, not settled yet

    return change


@dataclass(frozen=True)
class Change:
    make: Callable[..., None]  # how the input changes
    note: str | None  # the note then: only `static` skipped, or none is (an input every manifest reads)
    shows: str  # in the full plan (or its error)
    again: tuple[str, ...] = ()  # what the next apply needs to leave the manifests as they render


CHANGES = {
    "manifest file": Change(
        _edit("manifests/inputs.yaml", "{name: inputs}", "{name: inputs, labels: {a: b}}"), STATIC_ONLY, "6 unchanged"
    ),
    "values file": Change(
        _edit("values.yaml", "region: eu", "region: us"), None, "3 changed, 3 unchanged", ("--resubmit-changed",)
    ),
    "--set": Change(lambda: None, None, "1 to create, 0 changed, 6 unchanged", ("--set", "count=4")),
    "env() variable": Change(
        _setenv("REPORT_DAY", "tuesday"), STATIC_ONLY, "3 changed, 3 unchanged", ("--resubmit-changed",)
    ),
    "secret value": Change(_setenv("REPORT_TOKEN", "tok-5678"), None, "6 unchanged"),  # masked: the same digests
    "workflow schema": Change(
        _edit("schemas/inputs/Report.json", '"object"', '"object", "title": "r"'), STATIC_ONLY, "6 unchanged"
    ),
    "$ref'd schema": Change(
        _edit("schemas/inputs/Report.json", '"minimum": 0', '"minimum": 0, "maximum": 1'),
        STATIC_ONLY,
        "n: 2 is greater than the maximum of 1",
    ),
    "input_schema path": Change(
        _edit("schemas/audit.json", '"integer"', '"string"'), STATIC_ONLY, "level: 1 is not of type 'string'"
    ),
    "ledger row changed": Change(_foreign_write("changed"), STATIC_ONLY, "~ report-0", ("--resubmit-changed",)),
    "ledger row pending": Change(_foreign_write("pending"), STATIC_ONLY, "6 unchanged"),
}


# Every input on SQLite; on PostgreSQL the ones the ledger holds (the others do not depend on its backend).
@pytest.mark.parametrize(
    ("name", "ledger_url"),
    [(name, "sqlite") for name in CHANGES] + [(name, "postgres") for name in CHANGES if name.startswith("ledger")],
    indirect=["ledger_url"],
)
def test_each_input_changed_alone_is_noticed(
    name: str, inputs_project: Path, run_cli: RunCli, ledger_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply(run_cli)
    assert notes(diff(run_cli))[0].startswith(BOTH)
    change = CHANGES[name]
    extra = ("--set", "count=4") if name == "--set" else ()
    if name in ("env() variable", "secret value"):
        change.make(monkeypatch)
    elif name.startswith("ledger"):
        change.make(ledger_url)
    else:
        change.make()
    result = diff(run_cli, *extra)
    full = diff(run_cli, *extra, "--refresh")
    assert (result.exit_code, result.stdout) == (full.exit_code, full.stdout), (result.stderr, full.stderr)
    assert change.shows in result.stdout + result.stderr
    if change.note is None:
        assert not notes(result), result.stderr
    else:
        assert notes(result)[0].startswith(change.note), result.stderr
    if result.exit_code == 1:  # the change made a run invalid: skipping the manifest would have hidden it
        return
    apply(run_cli, *change.again)
    again = diff(run_cli, *extra)
    assert again.exit_code == 0 and notes(again)[0].startswith("note: 2 manifests unchanged since applied"), (
        again.stderr
    )  # both recorded again


def test_forgotten_and_imported_rows_are_noticed(inputs_project: Path, run_cli: RunCli, ledger_url: str | None) -> None:
    apply(run_cli)
    forgot = run_cli("ledger", "forget", "report-1", "--yes")
    assert forgot.exit_code == 0, forgot.stderr
    result = same_as_full(run_cli)
    assert notes(result)[0].startswith(STATIC_ONLY)
    assert "found (apply records them) 1 run(s) in the engine that the ledger did not know" in result.stderr
    apply(run_cli)
    assert notes(diff(run_cli))[0].startswith(BOTH)

    exported = run_cli("ledger", "export")
    assert exported.exit_code == 0
    imported = run_cli("ledger", "import", "-", input=exported.stdout)
    assert imported.exit_code == 0, imported.stderr
    result = same_as_full(run_cli)  # an import may have changed any row of the target
    assert not notes(result) and result.stdout.endswith("6 unchanged, 0 removed, 0 unknown.\n")


def test_a_changed_manifest_renders_alone_and_the_others_keep_their_place(project: Path, run_cli: RunCli) -> None:
    for old in Path("manifests").iterdir():
        old.unlink()
    for name in ("a", "b", "c"):
        Path(f"manifests/{name}.yaml").write_text(STATIC.replace("static", name))
    assert run_cli("apply", "manifests/", "--yes").exit_code == 0
    _edit("manifests/b.yaml", "[a, b]", "[a, b, c]")()
    Path("manifests/b.yaml").write_text(Path("manifests/b.yaml").read_text().replace("{x:", "{y:"))
    for output in ("text", "markdown"):
        fast = run_cli("diff", "manifests/", "-o", output)
        full = run_cli("diff", "manifests/", "-o", output, "--refresh")
        assert fast.stdout == full.stdout and notes(fast)[0].startswith(
            "note: 2 manifests unchanged since applied (4 runs"
        )
    assert "| a | 0 | 0 | 0 | 0 | 2 |\n| b | 1 | 2 | 0 | 0 | 0 |\n| c | 0 | 0 | 0 | 0 | 2 |" in fast.stdout
    applied = run_cli("apply", "manifests/", "--yes", "--resubmit-changed")
    assert "Apply: 3 to send: 3 submitted, 0 failed, 0 unknown; 4 unchanged, 0 changed (skipped)" in applied.stdout
    assert notes(run_cli("diff", "manifests/"))[0].startswith("note: 3 manifests unchanged since applied (7 runs")


@pytest.mark.parametrize("mode", [(), ("--workers", "2", "--parallel-threshold", "0")], ids=["serial", "parallel"])
def test_a_run_planned_on_another_manifests_row_is_not_recorded(
    project: Path, run_cli: RunCli, mode: tuple[str, ...]
) -> None:
    """Two manifests declare the same key, applied apart: the second one's run is planned unchanged against the
    first one's row, which its record would not cover (a write to that row counts for the first manifest only)."""
    Path("manifests/one.yaml").write_text(STATIC.replace("name: static", "name: one"))
    Path("manifests/two.yaml").write_text(STATIC.replace("name: static", "name: two"))  # keys static-a, static-b too
    assert run_cli("apply", "manifests/one.yaml", "--yes", *mode).exit_code == 0
    assert run_cli("apply", "manifests/two.yaml", "--yes", *mode).exit_code == 0
    assert not notes(run_cli("diff", "manifests/two.yaml"))
    assert notes(run_cli("diff", "manifests/one.yaml"))[0].startswith("note: 1 manifest unchanged since applied")
    both = run_cli("diff", "manifests/one.yaml", "manifests/two.yaml")  # rendered together: keys declared twice
    assert both.exit_code == 1 and "duplicate key 'static-a'" in both.stderr


def test_a_parallel_apply_records_what_it_leaves_unchanged(project: Path, run_cli: RunCli) -> None:
    args = ("manifests/bulk-parent.yaml", "--set", "count=3000", "--max-runs", "3000")
    assert run_cli("apply", *args, "--yes", "--workers", "2", "--parallel-threshold", "0").exit_code == 0
    result = run_cli("diff", *args)
    assert notes(result)[0].startswith("note: 1 manifest unchanged since applied (3000 runs")
    assert result.stdout == "Plan: 0 to create, 0 changed, 3000 unchanged, 0 removed, 0 unknown.\n"


def test_a_key_of_a_skipped_manifest_declared_again_is_a_duplicate(inputs_project: Path, run_cli: RunCli) -> None:
    apply(run_cli)
    Path("manifests/inputs.yaml").write_text(INPUTS + "  - {workflow_name: Static, key: static-a}\n")
    fast, full = diff(run_cli), diff(run_cli, "--refresh")
    assert fast.exit_code == full.exit_code == 1
    assert "duplicate key 'static-a'" in full.stderr
    assert "duplicate key 'static-a': manifest 'static' declares it too" in fast.stderr


def test_max_runs_counts_the_runs_of_skipped_manifests(inputs_project: Path, run_cli: RunCli) -> None:
    apply(run_cli, "--max-runs", "10")
    Path("manifests/inputs.yaml").write_text(
        INPUTS + '  - {workflow_name: More, for_each: "{{ range(5) }}", key: "more-{{ item }}"}\n'
    )
    fast, full = diff(run_cli, "--max-runs", "10"), diff(run_cli, "--max-runs", "10", "--refresh")
    assert fast.exit_code == full.exit_code == 1
    assert "the manifests declare 11 runs, more than --max-runs 10" in full.stderr
    assert "the manifests declare 11 runs, more than --max-runs 10" in fast.stderr


def test_a_render_that_may_differ_between_processes_is_never_recorded(project: Path, run_cli: RunCli) -> None:
    Path("manifests/lucky.yaml").write_text(
        STATIC.replace("static", "lucky").replace('{x: "{{ item }}"}', '{x: "{{ [7] | random }}"}')
    )
    assert run_cli("apply", "manifests/", "--yes").exit_code == 0
    result = run_cli("diff", "manifests/")
    assert result.exit_code == 0 and "lucky" not in result.stdout
    assert notes(result)[0].startswith("note: 4 manifests unchanged since applied")  # the other four


def test_the_git_base_mode_compares_renders_without_the_ledger(project: Path, run_cli: RunCli) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "base")
    assert run_cli("apply", "manifests/", "--yes").exit_code == 0
    result = run_cli("diff", "manifests/", "--base", "main")
    assert result.exit_code == 0 and not notes(result)


@pytest.mark.engine_faults('[{"kind": "refuse", "on_call": 2, "code": "RESOURCE_EXHAUSTED"}]')
def test_an_apply_that_did_not_send_everything_records_nothing(tmp_path: Path, engine: dict[str, str]) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "static.yaml").write_text(STATIC.replace("[a, b]", '"{{ range(300) }}"'))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = cli_args(*args, "--engine", "remote")
        return subprocess.run(command, env=engine, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    first = cli("apply", "manifests/", "--yes", "--batch-size", "100", "--concurrency", "1")
    assert first.returncode in (1, 3) and "RESOURCE_EXHAUSTED" in first.stderr
    assert "unchanged since applied" not in cli("diff", "manifests/").stderr
    assert cli("apply", "manifests/", "--yes").returncode == 0  # sends the rest, and records the manifest
    assert "note: 1 manifest unchanged since applied (300 runs" in cli("diff", "manifests/").stderr


def test_another_build_of_the_tool_renders_again(project: Path, run_cli: RunCli, tmp_path: Path) -> None:
    """A tool whose code differs (another commit installed under the same version number) may render differently:
    its fingerprints differ. The copy of the package differs from this one by a comment."""
    assert run_cli("apply", "manifests/", "--yes").exit_code == 0
    copy = tmp_path / "build"
    shutil.copytree(
        Path(hatchet_manifest.__file__).parent, copy / "hatchet_manifest", ignore=shutil.ignore_patterns("__pycache__")
    )

    def diff_with(package: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(package)}
        command = [sys.executable, "-m", "hatchet_manifest", "diff", "manifests/"]
        return subprocess.run(command, env=env, cwd=project, capture_output=True, text=True, timeout=120)

    same = diff_with(copy)
    assert same.returncode == 0 and "note: 4 manifests unchanged since applied" in same.stderr, same.stderr
    render = copy / "hatchet_manifest" / "manifest" / "render.py"
    render.write_text(render.read_text() + "# another build\n")
    other = diff_with(copy)
    assert other.returncode == 0 and "unchanged since applied" not in other.stderr, other.stderr
    assert other.stdout == "Plan: 0 to create, 0 changed, 32 unchanged, 0 removed, 0 unknown.\n"
