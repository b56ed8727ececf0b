"""`hatchet-manifest render PATH...`: the runs exactly as they would be sent (dry-run preview). No network."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from hatchet_manifest.commands.options import RenderArgs, render_options, say_warnings
from hatchet_manifest.output import FORMATS, run_row, versioned, write_records


@click.command("render")
@render_options
@click.option("-o", "--output", type=click.Choice(FORMATS), default="yaml", show_default=True)
def command(output: str, **kw: Any) -> None:
    """Print the rendered runs: {key, workflow_name, input, options} (crons, schedules and events with their kind
    and fields). Secrets show as ***. `json` and `yaml`: {apiVersion, kind: RunList, runs: [...]}
    (schemas/output/run-list.schema.json); `jsonl`: a run a line.

    `json` and `yaml` are printed once every run is rendered and valid: when any run is invalid, stdout stays
    empty, the problems are listed on stderr and the exit code is 1. `jsonl` and `table` stream as the runs are
    rendered (whole lines), the problems listed after them.
    """
    args = RenderArgs.from_kwargs(kw)
    with contextlib.closing(args.renderer()) as renderer:
        records = (r.to_dict() for r in renderer.runs())
        if output == "table":
            records = (run_row(r) for r in records)
        write_records(records, output, sys.stdout, head=versioned("RunList"))
    say_warnings(renderer)
