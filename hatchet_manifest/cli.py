"""The `hatchet-manifest` command line: a thin click layer over the library."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from hatchet_manifest.errors import HatchetManifestError, ManifestError

HELP = """Launch Hatchet workflow runs declared in YAML manifests: render, validate, diff, apply.

\b
Exit codes:
  0    success
  1    user, config or validation error (nothing submitted)
  2    usage error; with `diff --detailed-exitcode`: changes present
  3    partially submitted (some runs failed or have an unknown fate)
  4    unexpected internal error (rerun with --traceback)
  130  interrupted (after recording what was submitted)
  141  the reader of the output went away (broken pipe)
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
}

EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


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
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            n = len(exc.problems)
            click.echo(f"error: {n} problem{'s' if n != 1 else ''} found", err=True)
            ctx.exit(exc.exit_code)
        except HatchetManifestError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `... | head`: the reader left; stop quietly like other Unix tools
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # the one place an unexpected error becomes a message
            if (ctx.obj or {}).get("traceback"):
                raise
            if _is_client_error(exc):  # hatchet_client's errors: settings, token, connection (never the token)
                click.echo(f"error: {exc}", err=True)
                ctx.exit(1)
            click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --traceback)", err=True)
            ctx.exit(EXIT_INTERNAL)


def _is_client_error(exc: BaseException) -> bool:
    """hatchet_client.errors.HatchetClientError, without importing the client (and gRPC) for every command."""
    return any(
        c.__module__ == "hatchet_client.errors" and c.__name__ == "HatchetClientError" for c in type(exc).__mro__
    )


@click.group(cls=ManifestGroup, context_settings={"help_option_names": ["-h", "--help"]}, help=HELP)
@click.version_option(package_name="hatchet-manifest")
@click.option("--traceback", is_flag=True, help="Show the Python traceback of an unexpected error.")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    ctx.obj = {"traceback": traceback}


def main() -> None:
    """Console entry point."""
    cli(prog_name="hatchet-manifest")
