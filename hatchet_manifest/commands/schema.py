"""`hatchet-manifest schema`: the manifest JSON Schema, generated from the pydantic models."""

from __future__ import annotations

import json

import click

from hatchet_manifest.manifest.model import manifest_json_schema


@click.command("schema")
def command() -> None:
    """Print the manifest JSON Schema (schemas/manifest.schema.json is this output)."""
    click.echo(json.dumps(manifest_json_schema(), indent=2, sort_keys=True))
