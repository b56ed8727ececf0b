"""`hatchet-manifest validate PATH...`: schema, templates and inputs; exit 0 or 1. No network."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from hatchet_manifest.commands.options import RenderArgs, render_options, say_warnings


@click.command("validate")
@render_options
def command(**kw: Any) -> None:
    """Check manifests: structure, templates, rendered runs and input schemas. Exit 0 when valid, 1 otherwise."""
    args = RenderArgs.from_kwargs(kw)
    with contextlib.closing(args.renderer()) as renderer:
        count = renderer.count()  # in the render worker: no run comes back
    say_warnings(renderer)
    click.echo(f"{len(renderer.manifests)} manifest(s), {count} run(s): valid", err=True)
