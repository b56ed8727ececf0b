"""`hatchet-manifest diff PATH...`: what `apply` would do, against the ledger of a target or a git revision."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from hatchet_manifest.commands.options import RenderArgs, refresh_option, render_options, say_warnings
from hatchet_manifest.commands.session import TargetArgs, target_lock, target_options, why_target
from hatchet_manifest.commands.shortcut import skip_unchanged
from hatchet_manifest.errors import ConfigError
from hatchet_manifest.ledger import Ledger, Target, open_ledger
from hatchet_manifest.ledger.values import NoLedgerError
from hatchet_manifest.manifest.rendered import RenderedRun
from hatchet_manifest.manifest.sandbox import BoundedRenderer, Rendering
from hatchet_manifest.output import run_shape, whole_document, write_plan_json, write_plan_text
from hatchet_manifest.plan import workflows
from hatchet_manifest.plan.baseline import LedgerBaseline, RenderedBaseline, SettledBaseline
from hatchet_manifest.plan.gitbase import checkout_paths
from hatchet_manifest.plan.lookup import EngineLookup, lookup_since
from hatchet_manifest.plan.names import WorkflowNames
from hatchet_manifest.plan.planfile import PlanWriter
from hatchet_manifest.plan.planner import ACTIONS, Baseline, Plan, PlannedRun, summary_line
from hatchet_manifest.plan.reconcile import preview_settled, reconcile, unsettled
from hatchet_manifest.plan.target import EMBEDDED_ADDRESS, Connection, choose_mode, connect, embedded_db
from hatchet_manifest.plan.trigger_fields import in_the_past
from hatchet_manifest.plan.triggers import EngineTriggers, TriggerIndex
from hatchet_manifest.plan.unchanged import Unchanged, guarded
from hatchet_manifest.plan_markdown import write_plan_markdown
from hatchet_manifest.text import escape

EXIT_CHANGES = 2


def emit(
    planned: Iterable[PlannedRun],
    output: str,
    head: dict[str, Any],
    writer: PlanWriter | None,
    show_unchanged: bool,
    workflows: WorkflowNames | None = None,
    unchanged: Unchanged | None = None,
) -> Counter[str]:
    """Print the plan (and save it) in one streaming pass; returns the summary. `workflows`: collects the
    workflow names of the runs that may be sent (all but unchanged), for the preflight. `unchanged`: the
    manifests skipped (their runs counted, not listed: text and markdown only)."""
    summary: Counter[str] = Counter(dict.fromkeys(ACTIONS, 0))
    summary["unchanged"] += unchanged.total if unchanged is not None else 0
    past: list[RenderedRun] = []  # schedules whose time has passed: apply refuses them

    def noted() -> Iterator[PlannedRun]:
        for p in planned:
            summary[p.action] += 1
            if writer is not None:
                writer.add(p)
            if workflows is not None and p.run is not None and p.action != "unchanged" and p.run.kind != "event":
                workflows.add(p.run)
            if p.run is not None and p.action in ("create", "changed") and in_the_past(p.run):
                past.append(p.run)
            yield p

    def records() -> Iterator[dict[str, Any]]:
        for p in noted():
            yield p.to_dict()

    def shaped() -> Iterator[dict[str, Any]]:
        return (run_shape(r) for r in records())

    try:
        if output == "markdown":
            with whole_document(sys.stdout) as doc:
                write_plan_markdown(noted(), doc, _against(head), unchanged=unchanged)
        elif output == "json":
            write_plan_json(shaped(), sys.stdout, head, lambda: {"summary": dict(summary)})
        else:
            write_plan_text(records(), sys.stdout, show_unchanged)
            click.echo(summary_line(summary))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    for run in past:
        at = run.trigger.get("trigger_at") if run.trigger else ""
        click.echo(
            f"warning: {escape(run.file)}:{run.line}: {escape(run.where)}: trigger_at {at} is in the past: apply "
            "refuses it (`allow_past: true` creates it anyway: it fires at once)",
            err=True,
        )
    return summary


def _against(head: dict[str, Any]) -> str:
    """What a plan is against, in words: the target, the git base, or a preview without a target."""
    if head.get("base"):
        return f"the manifests at {head['base']}"
    target = head.get("target")
    if target:
        return f"{target['tenant_id']}@{target['address']}"
    return "no target yet (every run is new)"


def settle(ledger: Ledger, conn: Connection, names: list[str], lock_wait: float | None, grace: float) -> None:
    """Reconcile runs left pending or unknown by an earlier apply, and say what is still unknown.

    `lock_wait` None: the caller holds the target's lock already."""
    rows = unsettled(ledger, conn.target, names)
    if not rows:
        return
    with target_lock(ledger, conn.target, lock_wait) if lock_wait is not None else contextlib.nullcontext():
        if lock_wait is not None:  # another apply may have settled them while we waited
            rows = unsettled(ledger, conn.target, names)
        report = reconcile(ledger, conn.target, conn, rows, grace)
    if report.adopted:
        click.echo(f"reconciled: {report.adopted} run(s) of unknown fate were found in the engine", err=True)
    for error in report.errors:
        click.echo(f"warning: {escape(error)}", err=True)
    if report.still_unknown:
        click.echo(
            f"warning: {len(report.still_unknown)} run(s) have an unknown fate (see `?` below); "
            "`apply --resubmit-unknown` sends them again",
            err=True,
        )


def target_plan(
    renderer: Rendering,
    ledger: Ledger,
    conn: Connection,
    names: list[str],
    targs: TargetArgs,
    baseline: Baseline | None = None,
    write: bool = True,
) -> tuple[Plan, EngineLookup | None, int]:
    """The plan against the target's ledger, with the engine lookup unless turned off. `write`: runs found in
    the engine are adopted into the ledger (apply); without, they are only planned (diff)."""
    # whether the ledger knows the target at all (counting its rows would read them all; nothing to render: no lookup)
    known_rows = sum(1 for _ in itertools.islice(ledger.entries(conn.target), 1)) if names else 0
    lookup = None
    if targs.no_engine_lookup:
        click.echo(
            "note: --no-engine-lookup: keys the ledger does not know are planned as create without asking the engine",
            err=True,
        )
    else:
        lookup = EngineLookup(conn, ledger, conn.target, lookup_since(targs.lookup_window), adopt=write)
    baseline = baseline or LedgerBaseline(ledger, conn.target)
    triggers = None
    if not targs.no_engine_lookup:
        index = TriggerIndex(conn, since=lookup_since(targs.lookup_window))
        triggers = EngineTriggers(index, conn.config.namespace)
    plan = Plan(renderer.runs(), baseline, names, conn.config.namespace, lookup, triggers)
    return plan, lookup, known_rows


@contextlib.contextmanager
def preview_ledger(targs: TargetArgs) -> Iterator[Ledger]:
    """The target's ledger opened read-only (a preview writes nothing, not even a migration); a ledger that does
    not exist yet is an empty one, and none is created."""
    try:
        ledger = open_ledger(targs.ledger, Path(targs.state_dir), readonly=True)
    except NoLedgerError:
        with (
            tempfile.TemporaryDirectory(prefix="hatchet-manifest-empty-") as tmp,
            open_ledger(Path(tmp) / "ledger.db", Path(tmp)) as empty,
        ):
            yield empty
        return
    with ledger:
        yield ledger


def _no_embedded_engine(targs: TargetArgs) -> bool:
    """The target is the embedded engine of a state dir that has none yet (nothing was ever applied there)."""
    return choose_mode(targs.engine, os.environ) == "embedded" and not embedded_db(Path(targs.state_dir)).exists()


def preview_settle(ledger: Ledger, conn: Connection, names: list[str]) -> SettledBaseline:
    """The ledger as the next apply's reconciliation would leave it, without writing or locking (diff)."""
    rows = unsettled(ledger, conn.target, names)
    found, errors = preview_settled(conn, rows)
    for error in errors:
        click.echo(f"warning: {escape(error)}", err=True)
    if found:
        click.echo(f"{len(found)} run(s) of unknown fate were found in the engine; apply will record them", err=True)
    still = len(rows) - len(found)
    if still:
        click.echo(
            f"warning: {still} run(s) have an unknown fate (see `?` below); `apply --resubmit-unknown` sends them again",
            err=True,
        )
    return SettledBaseline(ledger, conn.target, found)


def lookup_warnings(plan: Plan, lookup: EngineLookup | None, known_rows: int, warn_age: timedelta) -> None:
    if lookup is None:
        return
    report = lookup.report
    adopted = sum(report.adopted.values())
    stamped = sum(report.stamped.values())
    done = "were adopted" if lookup.adopt else "were found there (apply records them in the ledger)"
    if known_rows == 0 and (stamped or adopted):
        click.echo(
            f"warning: the ledger had no record of this target, but the engine holds runs stamped by "
            f"hatchet-manifest; {adopted} {done}. Share one ledger between CI jobs "
            "(--ledger postgresql://...) so that runs older than the engine keeps are not re-created.",
            err=True,
        )
    elif adopted:
        what = "adopted" if lookup.adopt else "found (apply records them)"
        click.echo(f"{what} {adopted} run(s) in the engine that the ledger did not know", err=True)
    cutoff = datetime.now(UTC) - warn_age
    for manifest, creates in sorted(plan.creates.items()):
        oldest = report.oldest.get(manifest)
        if creates and oldest is not None and oldest < cutoff:
            click.echo(
                f"warning: manifest {manifest!r} has runs in the engine since {oldest:%Y-%m-%d}; the {creates} "
                "run(s) planned as create were not found there: any that ran before the engine's retention "
                "window would be re-created",
                err=True,
            )


def unmanaged_note(plan: Plan) -> None:
    """Say which crons of the declared crons' workflows the tool does not manage (declared in code, made by hand
    or by another tool): listed for information, never touched."""
    source = plan.triggers
    if not isinstance(source, EngineTriggers) or not source.cron_workflows:
        return
    crons = source.index.unmanaged_crons(source.cron_workflows)
    for c in crons[:20]:
        how = "declared in code" if c.method == "DEFAULT" else f"named {escape(c.name)!r}, not stamped by a manifest"
        paused = ", paused" if not c.enabled else ""
        click.echo(
            f"unmanaged cron: {escape(c.workflow_name)} {escape(c.expression)!r} ({how}{paused}; left alone)", err=True
        )
    if len(crons) > 20:
        click.echo(f"... and {len(crons) - 20} more unmanaged crons", err=True)


def preflight_names(conn: Connection, names: WorkflowNames) -> None:
    """Check the workflows of the runs the plan would send exist in the target (raises ManifestError listing the
    runs of each missing one), or say why nothing was checked."""
    result = workflows.check(conn, names)
    if result.note:
        click.echo(f"note: {result.note}", err=True)


def plan_against_base(
    rargs: RenderArgs, renderer: Rendering, base: str, names: list[str]
) -> tuple[Plan, RenderedBaseline]:
    """The plan against the same manifests at git revision `base`, and that baseline (close it after)."""
    with tempfile.TemporaryDirectory(prefix="hatchet-manifest-base-") as tmp:
        paths = checkout_paths(base, list(rargs.paths), Path(tmp))
        base_manifests = dataclasses.replace(rargs, paths=tuple(paths)).load() if paths else []
        with BoundedRenderer(base_manifests, renderer.values, renderer.limits, None, bounds=rargs.bounds) as based:
            baseline = RenderedBaseline(based.runs())  # rendered under the same bounds as the head
    return Plan(renderer.runs(), baseline, names), baseline


@click.command("diff")
@render_options
@target_options
@click.option(
    "--base", metavar="GITREF", help="Compare with the same manifests at this git revision instead of the ledger."
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown: for a pull-request comment or a job summary (totals, then per manifest what changes; kept "
    "under GitHub's 65,536-character limit).",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are, 1 on error."
)
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `apply PLAN.json`.")
@click.option("--show-unchanged", is_flag=True, help="List unchanged runs too (text output).")
@refresh_option
@click.pass_context
def command(
    ctx: click.Context,
    /,
    base: str | None,
    output: str,
    detailed_exitcode: bool,
    out: str | None,
    show_unchanged: bool,
    refresh: bool,
    **kw: Any,
) -> None:
    """Show what `apply` would do: `+` create, `~` changed (same key, new content), `=` unchanged,
    `-` removed from the manifests, `?` unknown fate."""
    rargs = RenderArgs.from_kwargs(kw)
    targs = TargetArgs.from_kwargs(kw)
    # what lists every run (json, a saved plan, unchanged runs shown) renders every manifest; --base has no ledger
    skip = not refresh and base is None and output != "json" and not out and not show_unchanged
    renderer = rargs.renderer(start=not skip)  # a saved plan flags runs that use secret() and never holds their values
    with contextlib.closing(renderer):
        _diff(ctx, rargs, targs, renderer, base, output, detailed_exitcode, out, show_unchanged, skip)


def _diff(
    ctx: click.Context,
    rargs: RenderArgs,
    targs: TargetArgs,
    renderer: BoundedRenderer,
    base: str | None,
    output: str,
    detailed_exitcode: bool,
    out: str | None,
    show_unchanged: bool,
    skip: bool,
) -> None:
    if not skip:  # otherwise the manifests left to render are known once the target's ledger is read
        renderer.prepare()
    names = [m.name for m in renderer.manifests]
    if base is not None:
        if out:
            raise ConfigError("--out saves a plan against a target's ledger; it cannot be combined with --base")
        plan, baseline = plan_against_base(rargs, renderer, base, names)
        with contextlib.closing(baseline):
            summary = emit(plan, output, {"base": base}, None, show_unchanged)
    elif _no_embedded_engine(targs) and not out:  # --out needs a target: the embedded engine is made for it
        renderer.prepare()
        db = embedded_db(Path(targs.state_dir))
        click.echo(f"target: the embedded engine (none yet at {escape(str(db))}: every run is new)", err=True)
        with preview_ledger(targs) as ledger:
            plan = Plan(renderer.runs(), LedgerBaseline(ledger, Target("", EMBEDDED_ADDRESS)), names)
            summary = emit(plan, output, {"target": None}, None, show_unchanged)
    else:
        with (
            preview_ledger(targs) as ledger,
            connect(targs.engine, Path(targs.state_dir)) as conn,
            contextlib.ExitStack() as cleanup,
        ):
            click.echo(f"target: {escape(conn.describe())}{why_target(targs.engine)}", err=True)
            target: Target = conn.target
            _, unchanged = skip_unchanged(renderer, ledger, target, conn.config.namespace, skip=skip, seal=False)
            names = [m.name for m in renderer.manifests]  # those to render
            # A preview: no lock is taken and nothing is written, so a running apply never blocks it.
            settled = guarded(preview_settle(ledger, conn, names), unchanged)
            plan, lookup, known_rows = target_plan(renderer, ledger, conn, names, targs, settled, write=False)
            if lookup is not None:
                cleanup.callback(lookup.close)
            writer = PlanWriter(Path(out), target, conn.config.namespace) if out else None
            sent = WorkflowNames()
            summary = emit(plan, output, {"target": target.to_dict()}, writer, show_unchanged, sent, unchanged)
            if writer is not None:
                writer.finish(dict(summary), lambda keys: ledger.state_digest(target, keys))
                click.echo(f"plan saved to {out}", err=True)
            lookup_warnings(plan, lookup, known_rows, targs.warn_age)
            unmanaged_note(plan)
            preflight_names(conn, sent)
    say_warnings(renderer)
    changes = sum(summary[a] for a in ("create", "changed", "removed", "unknown"))
    if detailed_exitcode and changes:
        ctx.exit(EXIT_CHANGES)
