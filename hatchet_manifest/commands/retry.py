"""`hatchet-manifest retry PATH...`: replay the manifests' failed (or cancelled) runs in the engine, under their run
ids, each replay counted in the ledger; with --wait, follow them to the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hatchet_manifest.commands.following import (
    ManifestArgs,
    PollArgs,
    follow,
    manifest_options,
    poll_options,
    report,
    wait_timeout_option,
)
from hatchet_manifest.commands.session import confirm, target_lock
from hatchet_manifest.ledger import open_ledger
from hatchet_manifest.outcomes import actions
from hatchet_manifest.outcomes.read import Reader, Scope
from hatchet_manifest.text import escape


@click.command("retry")
@manifest_options
@poll_options
@click.option("--failed", is_flag=True, help="Replay the failed runs (the default).")
@click.option("--cancelled", is_flag=True, help="Replay the cancelled runs (with --failed: both).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; replay nothing.")
@click.option("--wait", is_flag=True, help="Then follow every run of the manifests until all have finished.")
@wait_timeout_option
@click.option("-o", "--output", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True)
@click.pass_context
def command(
    ctx: click.Context,
    /,
    failed: bool,
    cancelled: bool,
    yes: bool,
    dry_run: bool,
    wait: bool,
    wait_timeout: float | None,
    output: str,
    **kw: Any,
) -> None:
    """Replay the failed runs of the manifests (--cancelled: the cancelled ones; both flags: both), after showing
    how many and asking. Hatchet replays a run under the same run id; the ledger counts each key's replays.
    With --wait, exit 0/5/6 as status does."""
    poll = PollArgs.from_kwargs(kw)
    statuses = tuple(s for s, on in (("FAILED", failed or not cancelled), ("CANCELLED", cancelled)) if on)
    args = ManifestArgs.from_kwargs(kw)
    names = args.names()
    with open_ledger(args.ledger, Path(args.state_dir)) as store, args.connect() as conn:
        with target_lock(store, conn.target, args.lock_wait):  # replays are recorded: one writer per target
            scope = Scope.of(store, conn.target, names)
            selection = actions.select_runs(conn.hatchet, store, scope, statuses)
            for manifest, n in selection.per_manifest().items():
                click.echo(f"{escape(manifest)}: {n} to replay", err=True)
            replayed = 0
            before: int | None = None  # failed + cancelled runs before the replay
            if not dry_run and selection.runs:
                what = " or ".join(s.lower() for s in statuses)
                confirm(f"replay {len(selection.runs)} {what} run(s) in {conn.describe()}", yes)
                if wait:
                    tallies, _ = Reader(conn.hatchet, scope, store).tallies()
                    before = sum(t.failed + t.cancelled for t in tallies)
                try:
                    replayed = actions.replay(conn.hatchet, store, scope, selection.runs)
                except actions.ActionError as exc:
                    click.echo(f"error: {exc}", err=True)
                    _say(output, len(selection.runs), exc.done, selection.foreign, dry_run)
                    ctx.exit(3)
        _say("text" if wait else output, len(selection.runs), replayed, selection.foreign, dry_run, err=wait)
        if wait and not dry_run:
            reader = Reader(conn.hatchet, scope, store, show=poll.show)
            followed = follow(reader, poll.options(wait_timeout, replayed_from=before if replayed else None), output)
            ctx.exit(
                report(
                    followed.last, output, followed.outcome, timed_out=followed.timed_out, requests=followed.requests
                )
            )


def _say(output: str, found: int, replayed: int, foreign: int, dry_run: bool, err: bool = False) -> None:
    if output in ("json", "jsonl"):
        doc = {"found": found, "replayed": replayed, "left_alone": foreign, "dry_run": dry_run}
        click.echo(json.dumps(doc, indent=2 if output == "json" else None))
        return
    line = f"Retry: {'would replay' if dry_run else f'replayed {replayed} of'} {found} run(s)"
    if foreign:
        line += f"; {foreign} run(s) under the stamps not recorded by this ledger left alone"
    click.echo(line + ".", err=err)
