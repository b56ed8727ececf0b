"""Options and setup shared by the commands that talk to a target (diff, apply): state dir, ledger, engine."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hatchet_manifest.commands.options import ledger_option, state_dir_option
from hatchet_manifest.durations import parse_duration
from hatchet_manifest.errors import ConfigError
from hatchet_manifest.ledger import Ledger, LedgerLockedError, Target, open_ledger

if TYPE_CHECKING:  # the target module imports gRPC: not needed to read options
    from hatchet_manifest.plan.target import EngineMode

F = TypeVar("F", bound=Callable[..., Any])


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """`90m`, `12h`, `30d`, `2w`, checked when the command line is read (exit 2), not after the work."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@dataclass(frozen=True)
class TargetArgs:
    state_dir: str
    ledger: str | None
    engine: EngineMode
    lock_wait: float
    settle_grace: float
    no_engine_lookup: bool
    lookup_window: timedelta
    warn_age: timedelta

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> TargetArgs:
        return cls(**{k: kw.pop(k) for k in cls.__dataclass_fields__})

    def open_ledger(self) -> Ledger:
        return open_ledger(self.ledger, Path(self.state_dir))


def why_target(engine: str) -> str:
    """What `--engine auto` chose and why, for the `target:` line on stderr."""
    if engine != "auto":
        return ""
    return " (--engine auto: HATCHET_CLIENT_TOKEN is " + (
        "set)" if os.environ.get("HATCHET_CLIENT_TOKEN") else "not set)"
    )


_ENGINE_OPTION = click.option(
    "--engine",
    type=click.Choice(["auto", "embedded", "remote"]),
    default="auto",
    show_default=True,
    help="remote: HATCHET_CLIENT_* settings; embedded: the local engine in the state dir; auto: remote "
    "when HATCHET_CLIENT_TOKEN is set.",
)
_LOCK_WAIT_OPTION = click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for another apply on the same target to finish.",
)


def ledger_target_options(func: F) -> F:
    """The options that name a target and its ledger (for commands that plan nothing)."""
    for decorator in reversed([state_dir_option, ledger_option, _ENGINE_OPTION, _LOCK_WAIT_OPTION]):
        func = decorator(func)
    return func


def target_options(func: F) -> F:
    decorators = [
        ledger_target_options,
        click.option(
            "--settle-grace",
            type=click.FloatRange(min=0),
            default=5.0,
            show_default=True,
            help="Runs left pending by a stopped apply are looked up in the engine; those not found are "
            "called unknown only once they are this many seconds old (a dying apply's last call may still "
            "be committing).",
        ),
        click.option(
            "--no-engine-lookup",
            is_flag=True,
            help="Do not look keys the ledger does not know up in the engine (by their stamps) before "
            "planning them as create.",
        ),
        click.option(
            "--lookup-window",
            callback=_duration,
            metavar="DURATION",
            default="30d",
            show_default=True,
            help="How far back the engine lookup searches (runs older than the engine's retention are "
            "invisible anyway; the ledger outlives retention).",
        ),
        click.option(
            "--warn-age",
            callback=_duration,
            metavar="DURATION",
            default="7d",
            show_default=True,
            help="Warn when runs would be created for a manifest whose stamped runs in the engine go back "
            "further than this (older ones may have aged out of the engine).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@contextlib.contextmanager
def target_lock(ledger: Ledger, target: Target, wait: float) -> Iterator[None]:
    """The target's lock; when another apply holds it and `wait` allows, say who we wait for, then wait."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(ledger.lock(target, wait=0.0))
        except LedgerLockedError as busy:
            if wait <= 0:
                raise
            who = f"held by {busy.holder}" if busy.holder else "held by another process"
            click.echo(f"waiting up to {wait:g}s for the ledger lock of {target.id} ({who})", err=True)
            stack.enter_context(ledger.lock(target, wait=wait))
            click.echo("got the ledger lock", err=True)
        yield


def confirm(action: str, yes: bool) -> None:
    """Ask before `action` ("submit 5 run(s) to ...") on a terminal; without one, refuse unless --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"about to {action}: pass --yes to confirm (stdin is not a terminal)")
    click.confirm(f"{action[0].upper()}{action[1:]}?", abort=True, err=True)
