"""`hatchet-manifest init [DIR]`: a starter manifest, the manifest schema, a pre-commit config and the CI example."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from hatchet_manifest.starter import CI_SUPPORT_DIR, write_starter
from hatchet_manifest.text import escape


@click.command("init")
@click.argument("directory", default=".", type=click.Path(path_type=Path))
def command(directory: Path) -> None:
    """Write a starter layout into DIRECTORY (default: the current one; created when missing):
    manifests/example.yaml, schemas/manifest.schema.json (what `hatchet-manifest schema` prints),
    .pre-commit-config.yaml (a hook running `hatchet-manifest validate manifests/`) and the GitHub Actions
    example (.github/workflows/hatchet-manifest.yaml, .github/hatchet-manifest/).

    Never overwrites: when any of these files exists, it names them all, writes nothing and exits 1."""
    written = write_starter(directory)
    for f in written:
        click.echo(f"wrote {escape(str(directory / f.path))}")
    cd = "" if directory == Path(".") else f"cd {shlex.quote(str(directory))} && "
    click.echo(f"\nCI: set up what {escape(str(directory / CI_SUPPORT_DIR / 'README.md'))} lists. Next:")
    click.echo(f"  {escape(cd)}hatchet-manifest validate manifests/")
    click.echo("  hatchet-manifest diff manifests/      # what apply would do (locally: the embedded engine)")
