"""Every JSON document the commands print says its format (`apiVersion`, `kind`) and is described by a schema in
`schemas/output/`: real outputs of render, diff, apply and status (runs, crons, schedules and events on the
embedded engine) validate against them, and a run has one shape in all of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from tests.conftest import RunCli

ROOT = Path(__file__).parents[1]
SCHEMAS = ROOT / "schemas" / "output"
MANIFEST = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {name: shapes}
runs:
  - {workflow_name: Report, key: r1, input: {day: 1}, options: {priority: 2, additional_metadata: {team: data}}}
crons:
  - {workflow_name: Report, name: nightly, expression: '0 3 * * *', enabled: false}
schedules:
  - {workflow_name: Report, key: once, trigger_at: '2099-01-01T00:00:00Z'}
events:
  - {event_key: 'user:created', key: e1, payload: {id: 1}, scope: s}
"""


def validator(name: str) -> jsonschema.protocols.Validator:
    resources = [
        (f"https://hatchet-manifest.dev/schemas/output/{p.name}", Resource.from_contents(json.loads(p.read_text())))
        for p in SCHEMAS.glob("*.schema.json")
    ]
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=Registry().with_resources(resources))


def valid(name: str, doc: Any) -> Any:
    errors = sorted(validator(name).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    return doc


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    monkeypatch.setenv("HATCHET_MANIFEST_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_render_diff_apply_and_status_documents_match_their_schemas(project: Path, run_cli: RunCli) -> None:
    rendered = valid("run-list.schema.json", json.loads(run_cli("render", "m.yaml", "-o", "json").stdout))
    assert (rendered["apiVersion"], rendered["kind"]) == ("hatchet-manifest/v1", "RunList")
    import yaml

    assert yaml.safe_load(run_cli("render", "m.yaml", "-o", "yaml").stdout) == rendered
    for line in run_cli("render", "m.yaml", "-o", "jsonl").stdout.splitlines():
        valid("run.schema.json", json.loads(line))

    plan = valid("plan.schema.json", json.loads(run_cli("diff", "m.yaml", "--engine", "embedded", "-o", "json").stdout))
    assert plan["kind"] == "Plan" and plan["summary"]["create"] == 4
    # one shape: a planned run is the rendered run plus what the plan says of it
    run_of = {r["key"]: r for r in rendered["runs"]}
    for record in plan["runs"]:
        assert {k: v for k, v in record.items() if k in run_of[record["key"]]} == run_of[record["key"]]

    applied = run_cli("apply", "m.yaml", "--engine", "embedded", "-y", "-o", "json")
    assert applied.exit_code == 0, applied.stderr
    result = valid("apply.schema.json", json.loads(applied.stdout))
    assert result["kind"] == "ApplyResult" and result["triggers"]["done"]["event pushed"] == 1

    status = run_cli("status", "m.yaml", "--engine", "embedded", "-o", "json")
    doc = valid("status.schema.json", json.loads(status.stdout))
    assert doc["kind"] == "Status" and doc["total"]["recorded"] == 1  # the run; the triggers are not runs
    again = run_cli("apply", "m.yaml", "--engine", "embedded", "-y", "--dry-run", "-o", "json")
    assert valid("plan.schema.json", json.loads(again.stdout))["summary"]["unchanged"] == 4


def test_the_schemas_refuse_what_the_outputs_never_hold() -> None:
    run = {"key": "k", "workflow_name": "W", "input": {}, "options": {"additional_metadata": {}}}
    valid("run.schema.json", run)
    for bad in (
        {**run, "options": {"additional_metadata": {"n": 1}}},  # metadata values are strings
        {**run, "options": {"additional_metadata": {}, "priority": 4}},
        {**run, "additional_metadata": {}},  # flat metadata: not the shape
        {"key": "event:e", "kind": "event", "workflow_name": "W", "input": {}, "options": {"additional_metadata": {}}},
    ):
        assert list(validator("run.schema.json").iter_errors(bad)), bad
