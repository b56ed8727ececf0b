"""What status, cancel, retry and `apply --wait` share: options naming the manifests and the target, polling
options, the session (ledger, engine, scope), following with the board, and the final report with its exit code."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from hatchet_manifest.commands.allow import configure_access
from hatchet_manifest.commands.options import selector_option
from hatchet_manifest.commands.session import ledger_target_options, why_target
from hatchet_manifest.ledger import Ledger, open_ledger
from hatchet_manifest.ledger.values import NoLedgerError
from hatchet_manifest.manifest.access import ALLOW_SECRETS
from hatchet_manifest.manifest.loader import load
from hatchet_manifest.manifest.render_bounds import parse_seconds
from hatchet_manifest.manifest.selector import Selector
from hatchet_manifest.outcomes.follow import EXIT_CODES, Followed, Follower, FollowOptions
from hatchet_manifest.outcomes.read import Reader, Snapshot
from hatchet_manifest.outcomes.tally import Outcome, Tally
from hatchet_manifest.output import versioned
from hatchet_manifest.plan.target import Connection, EngineMode, connect
from hatchet_manifest.text import escape

F = TypeVar("F", bound=Callable[..., Any])


def _seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_seconds(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if seconds <= 0:
        raise click.BadParameter("must be positive", ctx, param)
    return seconds


def wait_timeout_option(func: F) -> F:
    return click.option(
        "--wait-timeout",
        callback=_seconds,
        metavar="DURATION",
        default=None,
        help="Stop waiting after this long (exit 6 if runs are still unfinished); default: no limit.",
    )(func)


def poll_options(func: F) -> F:
    decorators = [
        click.option(
            "--poll-interval",
            callback=_seconds,
            metavar="DURATION",
            default="2s",
            show_default=True,
            help="Time between polls of the engine, at least.",
        ),
        click.option(
            "--poll-rps",
            type=click.FloatRange(min=0, min_open=True),
            default=2.0,
            show_default=True,
            help="Requests per second to the engine, at most, on average (one per manifest per poll).",
        ),
        click.option(
            "--give-up-after",
            callback=_seconds,
            metavar="DURATION",
            default="60s",
            show_default=True,
            help="Give up (exit 1) when the engine has not answered for this long.",
        ),
        click.option(
            "--show",
            type=click.IntRange(min=0),
            default=10,
            show_default=True,
            help="Failed and cancelled runs listed (then a count of the others).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def manifest_options(func: F) -> F:
    """PATH..., -l/--selector, --allow-secret and the target's options: the manifests and where their runs
    went (read back with ManifestArgs.from_kwargs)."""
    decorators = [
        click.argument("paths", nargs=-1, required=True, type=click.Path()),
        selector_option,
        click.option(
            "--allow-secret",
            "allow_secret",
            multiple=True,
            metavar="NAME",
            help=f"A variable whose value is masked in everything shown (repeatable; also {ALLOW_SECRETS}): the "
            "engine's error messages may quote a run's input, and the secrets it was applied with.",
        ),
        ledger_target_options,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@dataclass(frozen=True)
class ManifestArgs:
    """What manifest_options read: the manifests, the secrets to mask, the ledger and the engine."""

    paths: tuple[str, ...]
    selector: tuple[str, ...]
    allow_secret: tuple[str, ...]
    state_dir: str
    ledger: str | None
    engine: EngineMode
    lock_wait: float

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> ManifestArgs:
        """Takes its fields out of the command's keyword arguments; registers the secrets to mask (as apply
        does, so that no output shows them)."""
        args = cls(**{k: kw.pop(k) for k in cls.__dataclass_fields__})
        configure_access((), args.allow_secret)
        return args

    def names(self) -> list[str]:
        """The selected manifests' names (loaded and validated, not rendered: the names are all that is needed)."""
        return [m.name for m in load(self.paths, Selector.parse(self.selector) if self.selector else None)]

    def reading_ledger(self) -> AbstractContextManager[Ledger]:
        return reading_ledger(self.ledger, self.state_dir)

    def connect(self) -> Connection:
        """The target, said on stderr."""
        conn = connect(self.engine, Path(self.state_dir))
        click.echo(f"target: {escape(conn.describe())}{why_target(self.engine)}", err=True)
        return conn


@dataclass(frozen=True)
class PollArgs:
    poll_interval: float
    poll_rps: float
    give_up_after: float
    show: int

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> PollArgs:
        return cls(**{k: kw.pop(k) for k in cls.__dataclass_fields__})

    def options(self, timeout: float | None, replayed_from: int | None = None) -> FollowOptions:
        return FollowOptions(
            timeout=timeout,
            interval=self.poll_interval,
            max_rps=self.poll_rps,
            give_up=self.give_up_after,
            replayed_from=replayed_from,
        )


@contextlib.contextmanager
def reading_ledger(location: str | None, state_dir: str) -> Iterator[Ledger]:
    """The ledger, read-only (nothing is locked or written); a ledger that does not exist yet reads as empty."""
    try:
        ledger = open_ledger(location, Path(state_dir), readonly=True)
    except NoLedgerError:
        with tempfile.TemporaryDirectory(prefix="hm-empty-") as tmp, open_ledger(Path(tmp) / "l.db", Path(tmp)) as e:
            yield e
        return
    with ledger:
        yield ledger


def follow(reader: Reader, options: FollowOptions, output: str, *, watch: bool = True) -> Followed:
    """Follow until done (or timed out) with the board on stderr; `-o jsonl` streams each changed manifest to
    stdout as it changes."""
    from hatchet_manifest.board import Board

    board = Board(sys.stderr) if watch else None
    follower = Follower(reader, options)
    seen: dict[str, Tally] = {}
    for snapshot in follower.follow():
        if output == "jsonl":
            emit_tallies(snapshot, seen)
        if board is not None:
            board.update(snapshot, final=follower.result is not None)
    assert follower.result is not None
    return follower.result


def emit_tallies(snapshot: Snapshot, seen: dict[str, Tally] | None = None) -> None:
    """A jsonl line per manifest whose counts differ from those in `seen` (every manifest when None)."""
    for tally in snapshot.tallies:
        if seen is None or seen.get(tally.manifest) != tally:
            if seen is not None:
                seen[tally.manifest] = tally
            click.echo(json.dumps({"event": "tally", **tally.to_dict()}))


def report(
    snapshot: Snapshot,
    output: str,
    outcome: Outcome | None = None,
    *,
    timed_out: bool = False,
    requests: int = 0,
    extra: dict[str, Any] | None = None,
) -> int:
    """The counts and failed runs on stdout (text, json, or the last jsonl line); returns the exit code of
    `outcome` (by default, the snapshot's as it is now)."""
    total = snapshot.total
    outcome = outcome or total.outcome()
    code = EXIT_CODES[outcome]
    if output in ("json", "jsonl"):
        doc = {
            **versioned("Status"),
            **(extra or {}),
            "outcome": outcome,
            "timed_out": timed_out,
            "manifests": [t.to_dict() for t in snapshot.tallies],
            "total": total.to_dict(),
            "failed": [f.to_dict() for f in snapshot.failed],
            "failed_not_listed": snapshot.not_listed,
            "requests": requests,
        }
        if output == "jsonl":
            doc = {"event": "done", **doc}
        click.echo(json.dumps(doc, indent=None if output == "jsonl" else 2))
        return code
    rows = list(snapshot.tallies)
    width = max([len("manifest"), *(len(escape(t.manifest)) for t in rows)])
    header = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "NOT FOUND")
    click.echo(f"{'MANIFEST':<{width}}  " + "  ".join(f"{h:>9}" for h in header))
    for t in [*rows, total] if len(rows) > 1 else rows:
        cells = (t.queued, t.running, t.completed, t.failed, t.cancelled, t.not_found)
        click.echo(f"{escape(t.manifest):<{width}}  " + "  ".join(f"{c:>9}" for c in cells))
    for f in snapshot.failed:
        replays = f" (replayed {f.attempts}x)" if f.attempts else ""
        key = escape(f.key) if f.key is not None else "(no key stamp)"
        click.echo(f"  {f.status.lower()}: {escape(f.manifest)} {key} run {f.run_id}{replays}: {escape(f.error)}")
    if snapshot.not_listed > 0:
        click.echo(f"  ... and {snapshot.not_listed} more failed or cancelled")
    if total.untracked:
        click.echo(f"  note: {total.untracked} run(s) carry these manifests' stamps beyond those the ledger recorded")
    verdict = {
        "completed": "every run completed",
        "failed": "some runs failed, were cancelled or are not found",
        "unfinished": "runs are still unfinished" + (" when the wait timed out" if timed_out else ""),
    }[outcome]
    click.echo(f"{verdict} (exit {code})", err=True)
    return code
