"""`hatchet-manifest status PATH...`: what became of the manifests' runs, read from the engine by their stamps."""

from __future__ import annotations

from typing import Any

import click

from hatchet_manifest.commands.following import (
    ManifestArgs,
    PollArgs,
    emit_tallies,
    follow,
    manifest_options,
    poll_options,
    report,
    wait_timeout_option,
)
from hatchet_manifest.outcomes.read import Reader, Scope
from hatchet_manifest.outcomes.started import WINDOW, StartedRuns, started_runs
from hatchet_manifest.text import escape


def report_started(started: StartedRuns) -> None:
    """The runs each cron, schedule and event started (text): none shown when there are none."""
    if not started.triggers:
        return
    click.echo(f"\nruns started by crons, schedules and events (last {WINDOW.days} days):")
    width = max(len(escape(s.key)) for s in started.triggers)
    for s in started.triggers:
        counts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(s.counts.items()))
        click.echo(f"  {escape(s.manifest)}  {escape(s.key):<{width}}  {counts}  (last {escape(s.last)})")
    for manifest in started.truncated:
        click.echo(f"  {escape(manifest)}: more runs than were read; the counts are of the newest")


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
    output: str,
    watch: bool,
    wait_timeout: float | None,
    **kw: Any,
) -> None:
    """How many of each manifest's applied runs are queued, running, completed, failed, cancelled, or not found
    in the engine; the failed ones listed; then the runs its crons, schedules and events started (apart: they
    do not change the exit code). Exit 0: all completed; 5: some failed, were cancelled or are not
    found; 6: some are unfinished (with --watch: when --wait-timeout expired)."""
    poll = PollArgs.from_kwargs(kw)
    args = ManifestArgs.from_kwargs(kw)
    names = args.names()
    with args.reading_ledger() as store, args.connect() as conn:
        reader = Reader(conn.hatchet, Scope.of(store, conn.target, names), store, show=poll.show)
        if watch:
            followed = follow(reader, poll.options(wait_timeout), output)
            code = report(
                followed.last, output, followed.outcome, timed_out=followed.timed_out, requests=followed.requests
            )
        else:
            snapshot = reader.snapshot(with_failed=True)
            started = started_runs(conn.hatchet, tuple(names))
            if output == "jsonl":
                emit_tallies(snapshot)
            extra = {"started_by_triggers": [s.to_dict() for s in started.triggers]} if output != "text" else None
            code = report(snapshot, output, requests=reader.requests + len(names), extra=extra)
            if output == "text":
                report_started(started)
    ctx.exit(code)
