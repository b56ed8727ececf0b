"""The published manifest JSON Schema is exactly `hatchet-manifest schema`'s output."""

from __future__ import annotations

import json

from hatchet_manifest.manifest.model import manifest_json_schema
from tests.conftest import ROOT, RunCli


def test_schema_file_matches_the_models(run_cli: RunCli) -> None:
    result = run_cli("schema")
    assert result.exit_code == 0
    published = (ROOT / "schemas" / "manifest.schema.json").read_text()
    assert result.stdout == published, (
        "schemas/manifest.schema.json drifted: run `hatchet-manifest schema > schemas/manifest.schema.json`"
    )
    assert json.loads(published) == json.loads(json.dumps(manifest_json_schema()))


def test_schema_carries_field_descriptions() -> None:
    schema = manifest_json_schema()
    run_entry = schema["$defs"]["RunEntry"]["properties"]
    assert "one run (cron, schedule, event) per item" in run_entry["for_each"]["description"]
    assert run_entry["as"]["default"] == "item"
    assert schema["additionalProperties"] is False
