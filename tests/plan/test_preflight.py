"""The preflight of workflow names against an engine that drops runs of unknown workflows, as Hatchet does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hatchet_client.engine import Engine

import hatchet_manifest as hm
from hatchet_manifest.errors import ManifestError
from hatchet_manifest.plan.baseline import LedgerBaseline
from hatchet_manifest.plan.planner import Plan
from hatchet_manifest.plan.target import connect
from hatchet_manifest.plan.workflows import check

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


def _plan_names(tmp_path: Path, state: Path) -> tuple[hm.Renderer, Plan]:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    renderer = hm.Renderer(hm.load([tmp_path / "m.yaml"]), schema_dir=None)
    with hm.open_ledger(None, state) as ledger:
        plan = Plan(renderer.runs(), LedgerBaseline(ledger, hm.Target("t", "a")), ["m"])
        for _ in plan:
            pass
    return renderer, plan


def test_unknown_names_are_located_problems_with_hints(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Engine(state / "engine.db", port=0, workflows=["BulkParent", "Other"])  # declares them in the database
    _, plan = _plan_names(tmp_path, state)
    with connect("embedded", state) as conn, pytest.raises(ManifestError) as caught:
        check(conn, plan.workflows)
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
    _, plan = _plan_names(tmp_path, state)
    with connect("embedded", state) as conn:
        result = check(conn, plan.workflows)
    assert result.checked == 0 and result.note is not None and "records runs of any name" in result.note


def test_all_names_known_passes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Engine(state / "engine.db", port=0, workflows=["BulkParent", "BulkParnt", "bulkparent", "Unheard"])
    _, plan = _plan_names(tmp_path, state)
    with connect("embedded", state) as conn:
        assert check(conn, plan.workflows).checked == 4
