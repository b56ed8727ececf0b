"""`hatchet-manifest ledger export|import|forget`: move a ledger between backends as JSON lines; forget rows."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from hatchet_manifest.commands.options import ledger_option, state_dir_option
from hatchet_manifest.commands.session import confirm, ledger_target_options, target_lock, why_target
from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import Ledger, LedgerEntry, Target, open_ledger
from hatchet_manifest.ledger.rows import RowError, parse_lines, to_line


@click.group("ledger")
def command() -> None:
    """Export or import the ledger (what was applied, per target) as JSON lines, e.g. to move it from SQLite to
    PostgreSQL: `ledger export -o ledger.jsonl`, then `ledger import --ledger postgresql://... ledger.jsonl`;
    forget rows of a target (`ledger forget`)."""


@command.command("export")
@ledger_option
@state_dir_option
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File to write (written whole or not at all); - for stdout.",
)
def export(ledger: str | None, state_dir: str, output: str) -> None:
    """Write every row of every target, one JSON object per line, sorted by tenant, address and key."""
    with open_ledger(ledger, Path(state_dir), create=False) as store:
        count = 0
        with click.open_file(output, "w", encoding="utf-8", atomic=output != "-") as out:
            for row in store.export_rows():
                out.write(to_line(row) + "\n")
                count += 1
        click.echo(f"exported {count} row(s) from {store.location}", err=True)


@command.command("import")
@ledger_option
@state_dir_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def import_(ledger: str | None, state_dir: str, file: str) -> None:
    """Add the rows of FILE (an export; - for stdin) to the ledger, in one transaction.

    Rows replace rows with the same target and key, except that a submitted run never changes its state or run
    id: such a file is refused as a whole.
    """
    name = "<stdin>" if file == "-" else file
    with open_ledger(ledger, Path(state_dir)) as store:
        try:
            with click.open_file(file, "r", encoding="utf-8") as lines:
                count = store.import_rows(parse_lines(lines))
        except RowError as exc:
            raise LedgerError(f"{name}:{exc.number}: {exc.reason}; nothing imported") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"cannot read {name}: {exc}") from exc
        click.echo(f"imported {count} row(s) into {store.location}", err=True)


SHOWN = 1000  # keys listed one by one; more are counted


@command.command("forget")
@ledger_target_options
@click.argument("keys", nargs=-1)
@click.option("--manifest", "manifests", multiple=True, help="Forget every row of this manifest (repeatable).")
@click.option("--dry-run", is_flag=True, help="List what would be forgotten and change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def forget(
    keys: tuple[str, ...],
    manifests: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    state_dir: str,
    ledger: str | None,
    engine: str,
    lock_wait: float,
) -> None:
    """Remove the rows of KEYS (and of every run of the --manifest ones) from the ledger of the target, like
    `terraform state rm`: for runs removed from git that `diff` keeps listing as removed. The engine keeps the
    runs. Rows whose fate is not settled (pending, unknown) are refused: reconcile them first (`diff`, `apply`).
    A forgotten run still declared in git is created again by the next apply unless the engine lookup finds it.
    """
    if not keys and not manifests:
        raise click.UsageError("name the KEYS to forget, or --manifest NAME")
    from hatchet_manifest.plan.target import EngineMode, connect  # here: export and import need no gRPC

    with open_ledger(ledger, Path(state_dir)) as store, connect(cast(EngineMode, engine), Path(state_dir)) as conn:
        click.echo(f"target: {conn.describe()}{why_target(engine)}", err=True)
        target = conn.target
        with target_lock(store, target, lock_wait):
            rows = _rows(store, target, keys, manifests)
            unsettled = [e.key for e in rows if e.state in ("pending", "unknown")]
            if unsettled:
                raise LedgerError(
                    f"{len(unsettled)} row(s) have a fate not settled yet (pending or unknown), for example "
                    f"{', '.join(unsettled[:5])}: run diff or apply to reconcile them first; nothing forgotten"
                )
            verb = "would forget" if dry_run else "forget"
            for entry in rows[:SHOWN]:
                click.echo(f"{verb} {entry.key} ({entry.state}, manifest {entry.manifest})")
            if len(rows) > SHOWN:
                click.echo(f"... and {len(rows) - SHOWN} more")
            if dry_run or not rows:
                click.echo(f"{len(rows)} row(s) would be forgotten from {target.id}", err=True)
                return
            confirm(f"forget {len(rows)} row(s) of {target.id}", yes)
            count = store.forget(target, [e.key for e in rows])
            click.echo(f"forgot {count} row(s) of {target.id} in {store.location}", err=True)


def _rows(ledger: Ledger, target: Target, keys: tuple[str, ...], manifests: tuple[str, ...]) -> list[LedgerEntry]:
    found = ledger.lookup(target, list(dict.fromkeys(keys)))
    missing = [k for k in dict.fromkeys(keys) if k not in found]
    if missing:
        raise LedgerError(
            f"{len(missing)} key(s) not in the ledger of {target.id}: {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
            + "; nothing forgotten"
        )
    rows = dict(found)
    if manifests:
        for entry in ledger.entries(target, manifests=manifests):
            rows.setdefault(entry.key, entry)
    return sorted(rows.values(), key=lambda e: e.key)
