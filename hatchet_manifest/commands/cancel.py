"""`hatchet-manifest cancel PATH...`: cancel the manifests' queued and running runs (those the ledger recorded)."""

from __future__ import annotations

import json
from typing import Any

import click

from hatchet_manifest.commands.following import (
    ManifestArgs,
    manifest_options,
)
from hatchet_manifest.commands.session import confirm
from hatchet_manifest.outcomes import actions
from hatchet_manifest.outcomes.read import Scope
from hatchet_manifest.text import escape


@click.command("cancel")
@manifest_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would be cancelled; cancel nothing.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def command(ctx: click.Context, /, yes: bool, dry_run: bool, output: str, **kw: Any) -> None:
    """Cancel the queued and running runs of the manifests, after showing how many and asking. Runs the ledger
    did not record for their key (another ledger's, or replaced by --resubmit-changed) are left alone."""
    args = ManifestArgs.from_kwargs(kw)
    names = args.names()
    with args.reading_ledger() as store, args.connect() as conn:
        scope = Scope.of(store, conn.target, names)
        selection = actions.select_runs(conn.hatchet, store, scope, ("QUEUED", "RUNNING"))
        queued, running = selection.count("QUEUED"), selection.count("RUNNING")
        for manifest, n in selection.per_manifest().items():
            click.echo(f"{escape(manifest)}: {n} to cancel", err=True)
        cancelled = 0
        if not dry_run and selection.runs:
            confirm(
                f"cancel {len(selection.runs)} run(s) ({queued} queued, {running} running) in {conn.describe()}", yes
            )
            try:
                cancelled = actions.cancel(conn.hatchet, selection.runs)
            except actions.ActionError as exc:
                click.echo(f"error: {exc}", err=True)
                _say(output, queued, running, exc.done, selection.foreign, dry_run)
                ctx.exit(3)
        _say(output, queued, running, cancelled, selection.foreign, dry_run)


def _say(output: str, queued: int, running: int, cancelled: int, foreign: int, dry_run: bool) -> None:
    if output == "json":
        doc = {"queued": queued, "running": running, "cancelled": cancelled, "left_alone": foreign, "dry_run": dry_run}
        click.echo(json.dumps(doc, indent=2))
        return
    verb = "would cancel" if dry_run else f"cancelled {cancelled} of"
    line = f"Cancel: {verb} {queued + running} run(s) ({queued} queued, {running} running)"
    if foreign:
        line += f"; {foreign} run(s) under the stamps not recorded by this ledger left alone"
    click.echo(line + ".")
