"""The shipped example manifests render to exactly what the SDK docs' code sends."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

import hatchet_manifest as hm
from tests.conftest import ROOT, RunCli

MANIFESTS = ROOT / "manifests"


def render(name: str, *sets: str) -> list[dict[str, Any]]:
    manifests = hm.load([MANIFESTS / name])
    return [r.to_dict() for r in hm.render(manifests, hm.Values(set=sets), schema_dir=ROOT / "schemas" / "inputs")]


def test_manual_trigger_is_the_docs_run_workflow_call() -> None:
    # hatchet.client.admin.run_workflow("ManualTriggerWorkflow", {"test": "test"},
    #                                   options={"additional_metadata": {"hello": "moon"}})
    assert render("manual-trigger.yaml") == [
        {
            "key": "manual-trigger",
            "workflow_name": "ManualTriggerWorkflow",
            "input": {"test": "test"},
            "options": {"additional_metadata": {"hello": "moon"}},
        }
    ]


def docs_bulk_parent(count: int = 20) -> list[dict[str, Any]]:
    """The docs' run_workflows loop, with metadata values as strings (what Hatchet stores and filters on)."""
    runs = []
    for i in range(count):
        runs.append(
            {
                "workflow_name": "BulkParent",
                "input": {"n": i},
                "options": {"additional_metadata": {"bulk-trigger": str(i), f"hello-{i}": f"earth-{i}"}},
            }
        )
    return runs


def test_bulk_parent_is_the_docs_run_workflows_loop() -> None:
    got = render("bulk-parent.yaml")
    assert [r["key"] for r in got] == [f"bulk-parent-{i}" for i in range(20)]
    assert [{k: v for k, v in r.items() if k != "key"} for r in got] == docs_bulk_parent()
    assert type(got[3]["input"]["n"]) is int


def test_bulk_parent_scales_with_set() -> None:
    got = render("bulk-parent.yaml", "count=1000")
    assert len(got) == 1000
    assert got[-1]["input"] == {"n": 999}


def test_backfill_daily() -> None:
    got = render("backfill-daily.yaml")
    days = [f"2026-01-0{d}" for d in range(1, 8)]
    assert got == [
        {
            "key": f"daily-report-eu-{day}",
            "workflow_name": "DailyReport",
            "input": {"day": day, "next_day": nxt, "region": "eu"},
            "options": {"additional_metadata": {"backfill": "daily-2026-01-01..2026-01-07", "day": day}, "priority": 1},
        }
        for day, nxt in zip(days, [*days[1:], "2026-01-08"], strict=True)
    ]


def test_backfill_crosses_months_and_is_inclusive() -> None:
    got = render("backfill-daily.yaml", "start=2026-01-30", "end=2026-02-02")
    assert [r["input"]["day"] for r in got] == ["2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"]


def test_matrix_train() -> None:
    got = render("matrix-train.yaml")
    assert [(r["key"], r["input"]) for r in got] == [
        ("train-small-tiny", {"model": "small", "dataset": "tiny", "epochs": 3, "gpus": 1}),
        ("train-small-full", {"model": "small", "dataset": "full", "epochs": 3, "gpus": 1}),
        ("train-large-full", {"model": "large", "dataset": "full", "epochs": 3, "gpus": 8}),
        ("train-distilled-full", {"model": "distilled", "dataset": "full", "epochs": 3, "gpus": 1}),
    ]
    assert got[0]["options"] == {"additional_metadata": {"model": "small", "dataset": "tiny"}}


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_match_the_published_schema(path: Any) -> None:
    schema = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    for doc in yaml.safe_load_all(path.read_text()):
        jsonschema.validate(doc, schema)


def test_render_all_examples_through_the_cli(run_cli: RunCli) -> None:
    result = run_cli("render", str(MANIFESTS), "--schema-dir", str(ROOT / "schemas" / "inputs"), "-o", "json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 1 + 20 + 7 + 4
    assert result.stderr == ""
