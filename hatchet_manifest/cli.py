"""The `hatchet-manifest` command line: a thin click layer over the library."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback as tb
from collections.abc import Iterator
from types import FrameType
from typing import Any

import click

from hatchet_manifest.errors import HatchetManifestError, ManifestError, Terminated, terminated
from hatchet_manifest.scrub import scrub, scrubbed_stdio
from hatchet_manifest.text import safe_message

HELP = """Launch Hatchet workflow runs declared in YAML manifests: render, validate, diff, apply.

\b
Exit codes:
  0    success
  1    user, config or validation error (nothing submitted)
  2    usage error; with `diff --detailed-exitcode`: changes present
  3    partially submitted (some runs failed or have an unknown fate)
  4    unexpected internal error (rerun with --traceback)
  5    runs failed, were cancelled or are not found (status, apply --wait, retry --wait)
  6    runs still unfinished (status; apply --wait, retry --wait: when --wait-timeout expired)
  130  interrupted (after recording what was submitted)
  141  the reader of the output went away (broken pipe)
  143  terminated by SIGTERM (after recording what was submitted, as on Ctrl-C)

Secret values (secret(), and the variables --allow-secret allows) are masked as *** in everything the tool
writes.
"""

# subcommand name -> module under hatchet_manifest.commands exposing `command`.
# Loaded lazily so that `render` does not pay for gRPC imports.
COMMANDS = {
    "validate": "validate",
    "render": "render",
    "schema": "schema",
    "engine": "engine",
    "diff": "diff",
    "apply": "apply",
    "ledger": "ledger",
    "status": "status",
    "cancel": "cancel",
    "retry": "retry",
    "init": "init",
}

EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (what CI runners and Kubernetes send on cancel) raises Terminated, a KeyboardInterrupt, in the main
    thread: the command stops as on Ctrl-C (calls in flight settled, unsent chunks recorded, the spool removed).
    A second SIGTERM while that cleanup runs is ignored (SIGKILL is what cuts it short). One that comes while a
    bulk call is being started waits a few milliseconds for it to be in flight: stopped there, the call's fate
    would be unknown."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            return
        if _starting_a_call(frame):
            later = threading.Timer(0.005, os.kill, (os.getpid(), signal.SIGTERM))
            later.daemon = True
            later.start()
            return
        fired = True
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


class ManifestGroup(click.Group):
    """Loads subcommands lazily and maps our errors to exit codes, for the console script and CliRunner alike."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        cmd: click.Command = importlib.import_module(f"hatchet_manifest.commands.{module}").command
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        """Runs the command with stdout and stderr scrubbed of secrets, and SIGTERM taken as Ctrl-C. (Messages are
        scrubbed before they are shortened, too: a secret cut in two would not be found by the stream.)"""
        with scrubbed_stdio(), sigterm_as_interrupt():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            n = len(exc.problems)
            click.echo(f"error: {n} problem{'s' if n != 1 else ''} found", err=True)
            ctx.exit(exc.exit_code)
        except HatchetManifestError as exc:
            click.echo(f"error: {safe_message(scrub(str(exc)))}", err=True)  # escaped and bounded: it may quote values
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            if terminated(exc):
                click.echo("terminated", err=True)
                ctx.exit(EXIT_TERMINATED)
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `... | head`: the reader left; stop quietly like other Unix tools
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except click.ClickException as exc:  # a usage error: shown here, through the scrubbed stderr
            exc.show()
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place an unexpected error becomes a message
            if (ctx.obj or {}).get("traceback"):  # written here, scrubbed, rather than by Python at exit
                click.echo("".join(tb.format_exception(exc)).rstrip("\n"), err=True)
                details = getattr(exc, "details", None)  # a render worker's own traceback (scrubbed already)
                if isinstance(details, str) and details:
                    click.echo(f"the render worker's traceback:\n{scrub(details)}", err=True)
                ctx.exit(EXIT_INTERNAL)
            if _is_client_error(exc):  # hatchet_client's errors: settings, token, connection (never the token)
                click.echo(f"error: {safe_message(scrub(str(exc)))}", err=True)
                ctx.exit(1)
            click.echo(
                f"internal error: {type(exc).__name__}: {safe_message(scrub(str(exc)))} (rerun with --traceback)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


def _starting_a_call(frame: FrameType | None) -> bool:
    """apply.executor.starting_a_call, when an apply runs (without importing the client for other commands)."""
    executor = sys.modules.get("hatchet_manifest.apply.executor")
    return executor is not None and bool(executor.starting_a_call(frame))


def _is_client_error(exc: BaseException) -> bool:
    """hatchet_client.errors.HatchetClientError, without importing the client (and gRPC) for every command."""
    return any(
        c.__module__ == "hatchet_client.errors" and c.__name__ == "HatchetClientError" for c in type(exc).__mro__
    )


@click.group(cls=ManifestGroup, context_settings={"help_option_names": ["-h", "--help"]}, help=HELP)
@click.version_option(package_name="hatchet-manifest")
@click.option("--traceback", is_flag=True, help="Show the Python traceback of an unexpected error.")
@click.option(
    "--no-color",
    is_flag=True,
    help="No colour (as NO_COLOR=1). Colour is on for a terminal unless NO_COLOR is set or TERM=dumb (which also "
    "turns off redrawing lines in place); FORCE_COLOR=1 turns it on without a terminal.",
)
@click.pass_context
def cli(ctx: click.Context, traceback: bool, no_color: bool) -> None:
    ctx.obj = {"traceback": traceback}
    if no_color:
        os.environ["NO_COLOR"] = "1"  # read where colour is decided, here and in the processes this one starts


def main() -> None:
    """Console entry point."""
    cli(prog_name="hatchet-manifest")
