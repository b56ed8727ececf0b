"""`hatchet-manifest ledger export|import|forget`: move a ledger between backends as JSON lines; forget rows.

Each opens only what exists, and creates nothing when it fails: `export` and `forget --dry-run` open the ledger
read-only; `forget` needs an existing ledger and resolves its target without starting (or creating) an engine;
`import` creates a new ledger only after reading its whole input, so that a bad file leaves nothing behind, and
`export -o FILE` writes a temporary file beside FILE and renames it into place once complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast
from urllib.parse import quote

import click

from hatchet_manifest.commands.options import ledger_option, state_dir_option
from hatchet_manifest.commands.session import confirm, ledger_target_options, target_lock, why_target
from hatchet_manifest.errors import ConfigError, LedgerError
from hatchet_manifest.ledger import Ledger, LedgerEntry, Target, open_ledger
from hatchet_manifest.ledger.base import BATCH
from hatchet_manifest.ledger.rows import RowError, parse_lines, parse_rows, read_lines, to_line
from hatchet_manifest.ledger.sqlite_file import os_reason
from hatchet_manifest.ledger.values import NoLedgerError
from hatchet_manifest.text import escape, shorten


@click.group("ledger")
def command() -> None:
    """Export or import the ledger (what was applied, per target) as JSON lines, e.g. to move it from SQLite to
    PostgreSQL: `ledger export -o ledger.jsonl`, then `ledger import --ledger postgresql://... ledger.jsonl`;
    forget rows of a target (`ledger forget`)."""


# -- export --------------------------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    return False


@contextlib.contextmanager
def _written(output: str, ledger: Ledger) -> Iterator[IO[str]]:
    """The file to write the export to: stdout for -; a FIFO or device as it is; a file through a temporary file
    beside it, renamed into place when complete (removed on any error: no partial file is left)."""
    if output == "-":
        with click.open_file("-", "w", encoding="utf-8") as out:
            yield out
        return
    path, shown = Path(output), escape(output)
    if path.is_symlink():  # the file it points to is replaced, not the link
        path = path.resolve()
    ledger_path: Path | None = getattr(ledger, "path", None)
    if ledger_path is not None and any(
        _same_file(path, Path(f"{ledger_path}{suffix}")) for suffix in ("", "-wal", "-shm", "-journal")
    ):
        raise ConfigError(f"cannot export to {shown}: it is the ledger's own file")
    try:
        info: os.stat_result | None = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except OSError as exc:
        raise LedgerError(f"cannot write {shown}: {os_reason(exc)}") from None
    try:
        if info is not None and not stat.S_ISREG(info.st_mode):  # a FIFO, /dev/null: written as it is, never replaced
            with open(path, "w", encoding="utf-8") as out:
                yield out
            return
        parent = path.parent
        if not parent.is_dir():
            missing = not parent.exists()
            raise LedgerError(
                f"cannot write {shown}: "
                + (f"the directory {escape(str(parent))} does not exist" if missing else f"{parent} is not a directory")
            )
        temp = parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            if info is not None:
                os.chmod(temp, stat.S_IMODE(info.st_mode))  # the file replaced keeps its permissions
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise LedgerError(f"cannot write {shown}: {os_reason(exc)}; nothing written") from None


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
    with open_ledger(ledger, Path(state_dir), readonly=True) as store:
        count = 0
        with _written(output, store) as out:
            for row in store.export_rows():
                out.write(to_line(row) + "\n")
                count += 1
        click.echo(f"exported {count} row(s) from {store.location}", err=True)


# -- import --------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _input(file: str, name: str) -> Iterator[IO[bytes]]:
    if file == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(file, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise LedgerError(f"cannot read {name}: {os_reason(exc)}") from None
    with stream:
        yield stream


class _Tee:
    """The lines read from `source`, copied to `copy` as they are read (so that no more is copied than checked)."""

    def __init__(self, source: IO[bytes], copy: IO[bytes]) -> None:
        self.source, self.copy = source, copy

    def readline(self, size: int = -1, /) -> bytes:
        data = self.source.readline(size)
        self.copy.write(data)
        return data


def _checked(stream: IO[bytes], stack: contextlib.ExitStack) -> IO[bytes]:
    """Every row of `stream` validated, and a stream to read them again from: the same one rewound, or (stdin, a
    pipe) a temporary copy made while checking. For a new ledger, created only once its input is known good."""
    if stream.seekable():
        start = stream.tell()
        for _ in parse_rows(parse_lines(read_lines(stream)), BATCH):
            pass
        stream.seek(start)
        return stream
    copy = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by the stack
    for _ in parse_rows(parse_lines(read_lines(_Tee(stream, copy))), BATCH):
        pass
    copy.seek(0)
    return copy


@command.command("import")
@ledger_option
@state_dir_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def import_(ledger: str | None, state_dir: str, file: str) -> None:
    """Add the rows of FILE (an export; - for stdin) to the ledger, in one transaction.

    Rows replace rows with the same target and key, except that a submitted run never changes its state or run
    id: such a file is refused as a whole. A ledger that does not exist yet is created once every row of FILE has
    been read and found valid.
    """
    name = "<stdin>" if file == "-" else escape(file)
    try:
        with contextlib.ExitStack() as stack:
            stream = stack.enter_context(_input(file, name))
            try:
                store = open_ledger(ledger, Path(state_dir), create=False)
            except NoLedgerError:
                stream = _checked(stream, stack)
                store = open_ledger(ledger, Path(state_dir))
            with store:
                count = store.import_rows(parse_lines(read_lines(stream)))
                click.echo(f"imported {count} row(s) into {store.location}", err=True)
    except RowError as exc:
        raise LedgerError(f"{name}:{exc.number}: {exc.reason}; nothing imported") from None
    except OSError as exc:
        raise LedgerError(f"cannot read {name}: {os_reason(exc)}; nothing imported") from None


# -- forget --------------------------------------------------------------------------------------------------------

SHOWN = 1000  # keys listed one by one; more are counted


def _engine_tenant(db: Path) -> str:
    """The tenant id of the embedded engine's database, read without starting the engine or writing anything."""
    hint = "for a remote Hatchet, set HATCHET_CLIENT_TOKEN or pass --engine remote"
    if not db.is_file():
        raise ConfigError(
            f"no embedded engine at {escape(str(db))}: nothing was applied to the embedded target from this state "
            f"dir ({hint})"
        )
    uri = f"file:{quote(os.fspath(db))}?mode=ro"
    row = None
    for options in ("", "&immutable=1"):  # immutable: a read-only directory, where SQLite cannot make -shm
        try:
            conn = sqlite3.connect(uri + options, uri=True)
            try:
                row = conn.execute("SELECT value FROM settings WHERE key = 'tenant_id'").fetchone()
            finally:
                conn.close()
            break
        except sqlite3.Error as exc:
            if options or Path(f"{db}-wal").exists():
                raise ConfigError(
                    f"cannot read the tenant of the embedded engine from {escape(str(db))}: {exc} (is it the "
                    "engine's database?)"
                ) from None
    if row is None:
        raise ConfigError(f"the embedded engine's database {escape(str(db))} has no tenant id")
    return str(row[0])


def existing_target(engine: str, state_dir: Path) -> tuple[Target, str]:
    """The target `--engine` names and how to describe it, like `plan.target.connect` but starting nothing and
    creating nothing: a remote Hatchet from its settings; the embedded engine's tenant from its database."""
    from hatchet_manifest.plan.target import EMBEDDED_ADDRESS, EngineMode, choose_mode, embedded_db, remote_config

    if choose_mode(cast(EngineMode, engine), os.environ) == "remote":
        config = remote_config(os.environ)
        return Target(config.tenant_id, config.host_port), f"Hatchet at {config.host_port} (tenant {config.tenant_id})"
    db = embedded_db(state_dir)
    return Target(_engine_tenant(db), EMBEDDED_ADDRESS), f"the embedded engine ({escape(str(db))})"


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
    A key not in the ledger, or a manifest without rows in it, is an error (with --dry-run too), and nothing is
    forgotten. A forgotten run still declared in git is created again by the next apply unless the engine lookup
    finds it.
    """
    if not keys and not manifests:
        raise click.UsageError("name the KEYS to forget, or --manifest NAME")
    with open_ledger(ledger, Path(state_dir), create=False, readonly=dry_run) as store:
        target, described = existing_target(engine, Path(state_dir))
        click.echo(f"target: {described}{why_target(engine)}", err=True)
        shown = escape(target.id)
        # a dry run changes nothing and reads a snapshot: it needs no lock (and a read-only ledger cannot give one)
        with contextlib.nullcontext() if dry_run else target_lock(store, target, lock_wait):
            rows = _rows(store, target, keys, manifests)
            unsettled = [e.key for e in rows if e.state in ("pending", "unknown")]
            if unsettled:
                raise LedgerError(
                    f"{len(unsettled)} row(s) have a fate not settled yet (pending or unknown), for example "
                    f"{_names(unsettled, 5)}: run diff or apply to reconcile them first; nothing forgotten"
                )
            verb = "would forget" if dry_run else "forget"
            for entry in rows[:SHOWN]:
                click.echo(f"{verb} {escape(entry.key)} ({entry.state}, manifest {escape(entry.manifest)})")
            if len(rows) > SHOWN:
                click.echo(f"... and {len(rows) - SHOWN} more")
            if dry_run:
                click.echo(f"{len(rows)} row(s) would be forgotten from {shown}", err=True)
                return
            confirm(f"forget {len(rows)} row(s) of {shown}", yes)
            count = store.forget(target, [e.key for e in rows])
            click.echo(f"forgot {count} row(s) of {shown} in {store.location}", err=True)


def _names(names: list[str], limit: int = 10) -> str:
    """The first `limit` names, escaped and shortened (they come from the command line or the ledger), and how many
    more there are."""
    shown = ", ".join(escape(shorten(name, 80)) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _rows(ledger: Ledger, target: Target, keys: tuple[str, ...], manifests: tuple[str, ...]) -> list[LedgerEntry]:
    """The rows to forget; a LedgerError naming the keys not in the ledger and the manifests without rows."""
    wanted = list(dict.fromkeys(keys))
    rows: dict[str, LedgerEntry] = {}
    for start in range(0, len(wanted), BATCH):
        rows.update(ledger.lookup(target, wanted[start : start + BATCH]))
    missing = [k for k in wanted if k not in rows]
    if missing:
        raise LedgerError(
            f"{len(missing)} key(s) not in the ledger of {escape(target.id)}: {_names(missing)}; nothing forgotten"
        )
    if manifests:
        seen: set[str] = set()
        for entry in ledger.entries(target, manifests=manifests):
            rows.setdefault(entry.key, entry)
            seen.add(entry.manifest)
        empty = [m for m in dict.fromkeys(manifests) if m not in seen]
        if empty:
            raise LedgerError(
                f"{len(empty)} manifest(s) have no rows in the ledger of {escape(target.id)}: {_names(empty)}; "
                "nothing forgotten"
            )
    return sorted(rows.values(), key=lambda e: e.key)
