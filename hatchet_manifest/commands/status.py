"""`hatchet-manifest status PATH...`: what became of the manifests' runs, read from the engine by their stamps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hatchet_manifest.commands.following import (
    PollArgs,
    emit_tallies,
    follow,
    manifest_names,
    manifest_options,
    mask_secrets,
    poll_options,
    reading_ledger,
    report,
    say_target,
    wait_timeout_option,
)
from hatchet_manifest.outcomes.read import Reader, Scope
from hatchet_manifest.plan.target import connect


@click.command("status")
@manifest_options
@poll_options
@click.option("-o", "--output", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True)
@click.option("--watch", "-w", is_flag=True, help="Follow the runs until all have finished (a live board on stderr).")
@wait_timeout_option
@click.pass_context
def command(
    ctx: click.Context,
    /,
    paths: tuple[str, ...],
    selector: tuple[str, ...],
    allow_secret: tuple[str, ...],
    state_dir: str,
    ledger: str | None,
    engine: Any,
    lock_wait: float,
    output: str,
    watch: bool,
    wait_timeout: float | None,
    **kw: Any,
) -> None:
    """How many of each manifest's applied runs are queued, running, completed, failed, cancelled, or not found
    in the engine; the failed ones listed. Exit 0: all completed; 5: some failed, were cancelled or are not
    found; 6: some are unfinished (with --watch: when --wait-timeout expired)."""
    poll = PollArgs.from_kwargs(kw)
    mask_secrets(allow_secret)
    names = manifest_names(paths, selector)
    with reading_ledger(ledger, state_dir) as store, connect(engine, Path(state_dir)) as conn:
        say_target(conn.describe(), engine)
        reader = Reader(conn.hatchet, Scope.of(store, conn.target, names), store, show=poll.show)
        if watch:
            followed = follow(reader, poll.options(wait_timeout), output)
            code = report(
                followed.last, output, followed.outcome, timed_out=followed.timed_out, requests=followed.requests
            )
        else:
            snapshot = reader.snapshot(with_failed=True)
            if output == "jsonl":
                emit_tallies(snapshot)
            code = report(snapshot, output, requests=reader.requests)
    ctx.exit(code)
