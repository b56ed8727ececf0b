"""`hatchet-manifest ledger export|import`: move a ledger between backends as JSON lines."""

from __future__ import annotations

from pathlib import Path

import click

from hatchet_manifest.commands.options import ledger_option, state_dir_option
from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import open_ledger
from hatchet_manifest.ledger.rows import RowError, parse_lines, to_line


@click.group("ledger")
def command() -> None:
    """Export or import the ledger (what was applied, per target) as JSON lines, e.g. to move it from SQLite to
    PostgreSQL: `ledger export -o ledger.jsonl`, then `ledger import --ledger postgresql://... ledger.jsonl`."""


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
