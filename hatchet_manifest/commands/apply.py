"""`hatchet-manifest apply PATH...|PLAN.json`: render and validate everything, then submit what is new."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from hatchet_manifest.apply.executor import ApplyOptions, ApplyResult, Executor, select
from hatchet_manifest.apply.parallel import DEFAULT_THRESHOLD, THRESHOLD_ENV, Workers, auto_workers, spool_parallel
from hatchet_manifest.apply.spool import Spool
from hatchet_manifest.apply.triggers import TriggerApplier, TriggerWork, lookup_triggers, merge_triggers
from hatchet_manifest.commands.diff import emit, lookup_warnings, settle, target_plan
from hatchet_manifest.commands.following import PollArgs, follow, poll_options, reading_ledger, wait_timeout_option
from hatchet_manifest.commands.following import report as report_outcomes
from hatchet_manifest.commands.options import RenderArgs, refresh_option, render_options
from hatchet_manifest.commands.session import TargetArgs, confirm, target_lock, target_options, why_target
from hatchet_manifest.commands.shortcut import skip_unchanged, watch_apply
from hatchet_manifest.errors import ConfigError, ManifestError
from hatchet_manifest.manifest.sandbox import Rendering
from hatchet_manifest.outcomes.read import Reader, Scope
from hatchet_manifest.output import CheckProgress, ProgressBar, versioned
from hatchet_manifest.plan import workflows
from hatchet_manifest.plan.baseline import LedgerBaseline
from hatchet_manifest.plan.lookup import lookup_since
from hatchet_manifest.plan.names import WorkflowNames
from hatchet_manifest.plan.planfile import find_plan
from hatchet_manifest.plan.planner import PlannedRun, summary_line
from hatchet_manifest.plan.target import connect
from hatchet_manifest.plan.triggers import TriggerIndex
from hatchet_manifest.plan.unchanged import Unchanged, guarded
from hatchet_manifest.text import escape, safe_message


def report(result: ApplyResult, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(versioned("ApplyResult", result.to_dict()), indent=2))
        return
    counts = result.counts
    stopped = ""
    if result.not_sent:
        stopped += f", {result.not_sent} not sent"
    if result.unrecorded:
        stopped += f", {result.unrecorded} sent but not recorded (left pending: the next apply settles them)"
    click.echo(
        f"Apply: {result.to_send} to send: {result.submitted} submitted, {result.failed} failed, "
        f"{result.unknown} unknown{stopped}; "
        f"{counts.get('unchanged', 0)} unchanged, {result.skipped_changed} changed (skipped), "
        f"{result.skipped_unknown} unknown (skipped), {counts.get('removed', 0)} removed from the manifests "
        f"(left alone) in {result.seconds:.1f}s."
    )
    if result.triggers.get("done"):
        done = ", ".join(f"{n} {what}" for what, n in result.triggers["done"].items())
        click.echo(f"Triggers: {done}.")
    for kind, keys, total in (
        ("failed", result.failed_keys, result.failed),
        ("unknown", result.unknown_keys, result.unknown),
        ("unknown, not sent again (--resubmit-unknown sends it)", result.skipped_unknown_keys, result.skipped_unknown),
    ):
        for key in keys:
            click.echo(f"  {kind}: {escape(key)}")
        if total > len(keys):
            click.echo(f"  ... and {total - len(keys)} more {kind}")
    for error in result.errors:
        click.echo(f"error: {safe_message(error)}", err=True)
    if result.interrupted:
        how = "terminated" if result.terminated else "interrupted"
        click.echo(f"{how}: what was submitted is recorded; run apply again to continue", err=True)


@click.command("apply")
@render_options
@target_options
@click.option("--dry-run", is_flag=True, help="Print the plan and send nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=1000, show_default=True, help="Runs per bulk call.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True, help="Bulk calls in flight.")
@click.option(
    "--rps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Send at most this many runs per second, on average (default: as fast as the engine takes them).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=120.0,
    show_default=True,
    help="Deadline of one bulk call, in seconds; an expired call has an unknown fate and is never resent.",
)
@click.option("--resubmit-changed", is_flag=True, help="Also submit runs whose key exists with other content.")
@click.option(
    "--resubmit-unknown", is_flag=True, help="Also submit runs whose fate stayed unknown after reconciliation."
)
@click.option(
    "--no-stamp", is_flag=True, help="Do not add hatchet-manifest/key and hatchet-manifest/manifest metadata."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default="0: auto",
    help="Processes that render, validate and encode the runs of a large apply (auto: up to 2 when the manifests "
    f"declare at least {DEFAULT_THRESHOLD} runs; 1: in this process).",
)
@click.option(
    "--parallel-threshold",
    type=click.IntRange(min=0),
    default=DEFAULT_THRESHOLD,
    envvar=THRESHOLD_ENV,
    hidden=True,
    help="Declared runs from which --workers applies (tests set it low).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Then follow every run of the applied manifests (sent now or before) until all have finished: exit 0 all "
    "completed, 5 some failed or were cancelled, 6 unfinished when --wait-timeout expired.",
)
@wait_timeout_option
@poll_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@refresh_option
@click.pass_context
def command(
    ctx: click.Context,
    /,
    dry_run: bool,
    wait: bool,
    wait_timeout: float | None,
    yes: bool,
    batch_size: int,
    concurrency: int,
    rps: float | None,
    timeout: float,
    resubmit_changed: bool,
    resubmit_unknown: bool,
    no_stamp: bool,
    workers: int,
    parallel_threshold: int,
    output: str,
    refresh: bool,
    **kw: Any,
) -> None:
    """Submit the runs declared in PATH... that the target does not have yet (or exactly the runs of a saved plan).

    Everything is rendered and validated before anything is sent. Exit codes: 0 all submitted, 1 nothing
    submitted (error), 3 partially submitted (failed or unknown runs listed), 130 interrupted (Ctrl-C),
    143 terminated (SIGTERM: stopped as on Ctrl-C).
    """
    started = time.monotonic()
    poll = PollArgs.from_kwargs(kw)
    rargs = RenderArgs.from_kwargs(kw)
    targs = TargetArgs.from_kwargs(kw)
    plan_file = find_plan(rargs.paths)  # recognised by content, verified whole before anything in it is used
    if plan_file is not None and (rargs.values or rargs.set or rargs.set_string or rargs.selector):
        raise ConfigError("a saved plan is applied exactly as saved: -f, --set, --set-string and -l do not apply")
    renderer = None
    skip = not refresh and not (dry_run and output == "json")  # a plan in JSON lists every run
    if plan_file is None:  # its worker starts once the ledger said which manifests are unchanged since applied
        renderer = rargs.renderer(reveal_secrets=True, start=not skip)
    options = ApplyOptions(
        batch_size, concurrency, not no_stamp, resubmit_changed, resubmit_unknown, timeout, runs_per_second=rps
    )
    with (
        contextlib.closing(renderer) if renderer is not None else contextlib.nullcontext(),
        targs.open_ledger() as ledger,
        connect(targs.engine, Path(targs.state_dir)) as conn,
        contextlib.ExitStack() as cleanup,
    ):
        click.echo(f"target: {escape(conn.describe())}{why_target(targs.engine)}", err=True)
        target = conn.target
        names: list[str] = []  # the applied manifests, in order
        with target_lock(ledger, target, targs.lock_wait):
            planned: Any
            lookup = pool = watch = None
            known_rows = 0
            unchanged = Unchanged()
            if plan_file is not None:
                plan_file.check_fresh(ledger, target, conn.config.namespace)
                planned = _noting_manifests(plan_file.planned(), names)
            else:
                assert renderer is not None
                names = [m.name for m in renderer.manifests]  # the skipped ones too (--wait follows them)
                shortcut, unchanged = skip_unchanged(
                    renderer, ledger, target, conn.config.namespace, skip=skip, seal=not dry_run
                )
                rendered = [m.name for m in renderer.manifests]
                if not dry_run and (n := _workers(renderer, workers, parallel_threshold)) > 1:
                    renderer.close()  # its worker has prepared the entries; the shard workers render the runs
                    pool = cleanup.enter_context(Workers(n, rargs.bounds, rargs.access))
                settle(ledger, conn, rendered, None, targs.settle_grace)
                watch = watch_apply(shortcut, renderer, ledger, target)
                baseline = guarded(LedgerBaseline(ledger, target), unchanged)
                planned, lookup, known_rows = target_plan(renderer, ledger, conn, rendered, targs, baseline)
            if lookup is not None:
                cleanup.callback(lookup.close)
            if dry_run:
                emit(planned, output, {"target": target.to_dict()}, None, False, unchanged=unchanged)
                return
            result = ApplyResult()
            if unchanged.runs:
                result.counts["unchanged"] = unchanged.total
            sent = WorkflowNames()  # the workflows of the runs to send: each must exist in the target
            work = TriggerWork(resubmit_changed=resubmit_changed, resubmit_unknown=resubmit_unknown)
            with Spool(conn.hatchet.admin.encoder(), Path(targs.state_dir), batch_size) as spool:
                quiet = float(os.environ.get(PROGRESS_AFTER_ENV, "1"))
                checking = CheckProgress(renderer.prepare() if renderer is not None else 0, sys.stderr, quiet_for=quiet)
                try:
                    if pool is not None:
                        assert renderer is not None
                        count = spool_parallel(
                            renderer,
                            planned,
                            spool,
                            options,
                            result,
                            pool,
                            conn.config.namespace,
                            sent,
                            checking.add,
                            watch,
                        )
                    else:  # renders and validates everything
                        watched = watch.tap(planned) if watch is not None else planned
                        count = spool.write(select(_counted(watched, checking), options, result, sent, work))
                finally:
                    checking.end()  # the count reached, also when a problem stops the pass
                result.to_send = count
                click.echo(summary_line(Counter(result.counts) + Counter(work.counts)), err=True)
                if work.past:  # before anything is sent
                    raise ManifestError(work.past)
                checked = workflows.check(conn, sent)  # before anything is sent: Hatchet drops unknown names silently
                if checked.note:
                    click.echo(f"note: {checked.note}", err=True)
                if lookup is not None:
                    lookup_warnings(planned, lookup, known_rows, targs.warn_age)
                what = f"submit {count} run(s)" + (f" and act on {work.count} trigger(s)" if work.count else "")
                confirm(f"{what} to {conn.describe()}", yes or count + work.count == 0)
                bar = ProgressBar(count, sys.stderr)

                def progress(r: ApplyResult, final: bool = False) -> None:
                    bar.update(r.done, r.failed, r.unknown, final)

                if count:
                    Executor(ledger, target, conn.hatchet.admin, options, progress, result).run(spool)
                    progress(result, final=True)
                if (work.count or work.skipped_changed or work.skipped_unknown) and not result.interrupted:
                    index = lookup_triggers(planned)
                    if index is None and plan_file is not None:  # a saved plan: applied to what the engine holds now
                        index = TriggerIndex(conn, since=lookup_since(targs.lookup_window))
                    applier = TriggerApplier(ledger, target, conn.hatchet, index, options.stamp, conn.config.namespace)
                    merge_triggers(result, work, applier.run(work))
                if watch is not None:  # what it left exactly as the manifests render is recorded
                    watch.seal(planned, result.exit_code == 0, resubmit_changed, resubmit_unknown)
    result.seconds = time.monotonic() - started
    if not wait or result.interrupted:
        report(result, output)
        ctx.exit(result.exit_code)
    if output == "text":
        report(result, output)
    # Followed with the lock released and the render workers stopped: a wait may take hours.
    with reading_ledger(targs.ledger, targs.state_dir) as ledger, connect(targs.engine, Path(targs.state_dir)) as conn:
        reader = Reader(conn.hatchet, Scope.of(ledger, conn.target, names), ledger, show=poll.show)
        followed = follow(reader, poll.options(wait_timeout), output)
        code = report_outcomes(
            followed.last,
            output,
            followed.outcome,
            timed_out=followed.timed_out,
            requests=followed.requests,
            extra={"apply": result.to_dict()},
        )
    ctx.exit(result.exit_code if result.exit_code else code)  # a partial apply keeps its exit 3


PROGRESS_AFTER_ENV = "HATCHET_MANIFEST_PROGRESS_AFTER"  # seconds of first pass before its progress shows (tests: 0)


def _counted(planned: Iterable[PlannedRun], progress: CheckProgress) -> Iterator[PlannedRun]:
    """The planned runs, counted into `progress` a thousand at a time."""
    n = 0
    for run in planned:
        yield run
        n += run.run is not None  # removed runs are not checked: they are not rendered
        if n == 1000:
            progress.add(n)
            n = 0
    progress.add(n)


def _noting_manifests(planned: Iterator[PlannedRun], names: list[str]) -> Iterator[PlannedRun]:
    """The planned runs, noting their manifests' names in `names` as they pass."""
    seen = set(names)
    for run in planned:
        manifest = run.run.manifest if run.run is not None else run.known.manifest if run.known else None
        if manifest is not None and manifest not in seen:
            seen.add(manifest)
            names.append(manifest)
        yield run


def _workers(renderer: Rendering | None, workers: int, threshold: int) -> int:
    """How many processes render: 1 (this one) for a saved plan, below the threshold, or when the manifests
    declare crons, schedules or events (the shard workers render runs only)."""
    if renderer is None or renderer.prepare() < threshold or not sys.executable:
        return 1
    if any(m.model.crons or m.model.schedules or m.model.events for m in renderer.manifests):
        click.echo("note: the manifests declare crons, schedules or events: rendered in one process", err=True)
        return 1
    return workers or auto_workers()
