"""`hatchet-manifest render PATH...`: the runs exactly as they would be sent (dry-run preview). No network."""

from __future__ import annotations

import sys
from typing import Any

import click

from hatchet_manifest.commands.options import RenderArgs, render_options, say_warnings
from hatchet_manifest.output import FORMATS, run_row, write_records


@click.command("render")
@render_options
@click.option("-o", "--output", type=click.Choice(FORMATS), default="yaml", show_default=True)
def command(output: str, **kw: Any) -> None:
    """Print the rendered runs: {key, workflow_name, input, options}. Secrets show as ***.

    Runs stream as they are rendered; when any run is invalid the problems are listed on stderr
    after the output and the exit code is 1.
    """
    args = RenderArgs.from_kwargs(kw)
    renderer = args.renderer()
    records = (r.to_dict() for r in renderer.runs())
    if output == "table":
        records = (run_row(r) for r in records)
    write_records(records, output, sys.stdout)
    say_warnings(renderer)
