"""The preflight of workflow names against an engine that drops runs of unknown workflows, as Hatchet does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hatchet_client.engine import Engine, RunStore

import hatchet_manifest as hm
from hatchet_manifest.errors import ManifestError
from hatchet_manifest.plan.baseline import LedgerBaseline
from hatchet_manifest.plan.names import WorkflowNames
from hatchet_manifest.plan.planner import Plan
from hatchet_manifest.plan.target import connect
from hatchet_manifest.plan.workflows import check
from tests.apply.conftest import cli_args

MANIFEST = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {name: m}
runs:
  - workflow_name: BulkParent
    for_each: "{{ range(3) }}"
    key: "ok-{{ item }}"
  - workflow_name: BulkParnt
    for_each: "{{ range(2) }}"
    key: "typo-{{ item }}"
  - workflow_name: bulkparent
    key: case
  - workflow_name: Unheard
    key: nothing-close
"""


def _plan_names(tmp_path: Path, state: Path) -> WorkflowNames:
    """The workflow names of the runs a first apply would send (all of them are new)."""
    (tmp_path / "m.yaml").write_text(MANIFEST)
    renderer = hm.Renderer(hm.load([tmp_path / "m.yaml"]), schema_dir=None)
    names = WorkflowNames()
    with hm.open_ledger(None, state) as ledger:
        for p in Plan(renderer.runs(), LedgerBaseline(ledger, hm.Target("t", "a")), ["m"]):
            if p.run is not None and p.action != "unchanged":
                names.add(p.run)
    return names


def test_unknown_names_are_located_problems_with_hints(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Engine(state / "engine.db", port=0, workflows=["BulkParent", "Other"])  # declares them in the database
    names = _plan_names(tmp_path, state)
    with connect("embedded", state) as conn, pytest.raises(ManifestError) as caught:
        check(conn, names)
    path = tmp_path / "m.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:8: runs[1] (item=0): workflow_name: workflow 'BulkParnt' does not exist in the target tenant "
        "(2 runs) (did you mean 'BulkParent'?)",
        f"{path}:11: runs[2]: workflow_name: workflow 'bulkparent' does not exist in the target tenant (1 run) "
        "(did you mean 'BulkParent'? names are case-sensitive)",
        f"{path}:13: runs[3]: workflow_name: workflow 'Unheard' does not exist in the target tenant (1 run)",
    ]


def test_a_recorder_engine_checks_nothing_and_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    names = _plan_names(tmp_path, state)
    with connect("embedded", state) as conn:
        result = check(conn, names)
    assert result.checked == 0 and result.note is not None and "records runs of any name" in result.note


def test_all_names_known_passes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Engine(state / "engine.db", port=0, workflows=["BulkParent", "BulkParnt", "bulkparent", "Unheard"])
    names = _plan_names(tmp_path, state)
    with connect("embedded", state) as conn:
        assert check(conn, names).checked == 4


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(cli_args(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", [(), ("--workers", "2", "--parallel-threshold", "0")], ids=["serial", "parallel"])
def test_apply_sends_nothing_when_a_workflow_is_unknown_then_everything_once_fixed(
    tmp_path: Path, mode: tuple[str, ...]
) -> None:
    """The engine drops runs of unknown names and still answers ids (as Hatchet does): a typo must stop the apply."""
    state = tmp_path / ".hatchet-manifest"
    Engine(state / "engine.db", port=0, workflows=["BulkParent", "Other"])
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST.replace("bulkparent", "BulkParent").replace("Unheard", "Other"))
    refused = _cli(tmp_path, "apply", "m.yaml", "--yes", *mode)
    assert refused.returncode == 1, refused.stderr
    assert "workflow 'BulkParnt' does not exist in the target tenant (2 runs) (did you mean 'BulkParent'?)" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr
    with hm.open_ledger(None, state) as ledger:
        assert [t for t in ledger.targets() if ledger.count(t)] == []  # nothing recorded
    store = RunStore(state / "engine.db")
    try:
        assert list(store.list_runs()) == []  # nothing sent
    finally:
        store.close()
    diff = _cli(tmp_path, "diff", "m.yaml")
    assert diff.returncode == 1 and "workflow 'BulkParnt' does not exist" in diff.stderr

    manifest.write_text(manifest.read_text().replace("BulkParnt", "BulkParent"))
    fixed = _cli(tmp_path, "apply", "m.yaml", "--yes", *mode)
    assert fixed.returncode == 0, fixed.stderr
    store = RunStore(state / "engine.db")
    try:
        keys = sorted(r.additional_metadata["hatchet-manifest/key"] for r in store.list_runs())
    finally:
        store.close()
    assert keys == ["case", "nothing-close", "ok-0", "ok-1", "ok-2", "typo-0", "typo-1"]


def test_apply_on_a_recorder_engine_says_names_were_not_checked(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    applied = _cli(tmp_path, "apply", "m.yaml", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "workflow names were not checked" in applied.stderr
