"""`hatchet-manifest engine serve|token|runs`: the embedded Hatchet-compatible engine (logic in hatchet_client.engine)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType

import click
from hatchet_client.engine import DEFAULT_PORT, Engine, EngineError, RunStore, ServerTLS, StoredRun, issue_token

from hatchet_manifest.errors import ConfigError
from hatchet_manifest.output import write_records

DEFAULT_DB = Path(".hatchet-manifest") / "engine.db"
RUN_COLUMNS = [
    "run_id",
    "workflow_name",
    "status",
    "priority",
    "received_at",
    "finished_at",
    "error",
    "additional_metadata",
    "input",
]

db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DB,
    show_default=True,
    help="The engine's SQLite database (its token secret lives beside it).",
)
port_option = click.option(
    "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="gRPC port (0: a free one)."
)
rest_port_option = click.option(
    "--rest-port", type=click.IntRange(0, 65535), default=None, help="REST port  [default: --port + 1]"
)
host_option = click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")


@contextmanager
def _engine_errors() -> Iterator[None]:
    try:
        yield
    except EngineError as exc:
        raise ConfigError(str(exc)) from None


@click.group("engine")
def command() -> None:
    """The embedded engine: a local Hatchet-compatible server that stores the runs it receives in SQLite.

    \b
    hatchet-manifest engine serve &
    export HATCHET_CLIENT_TOKEN=$(hatchet-manifest engine token) HATCHET_CLIENT_TLS_STRATEGY=none
    hatchet-manifest engine runs -o json
    """


@command.command("serve")
@host_option
@port_option
@rest_port_option
@db_option
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve TLS with this certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="The certificate's private key.")
@click.option(
    "--tls-client-ca", type=click.Path(exists=True, dir_okay=False), help="Require client certificates from this CA."
)
@click.option(
    "--workflow",
    "workflows",
    multiple=True,
    metavar="NAME",
    help="Declare a workflow (full name; repeatable; kept in the database). An engine that knows workflows drops "
    "runs of other names, as Hatchet does; `apply` checks names first.",
)
def serve(
    host: str,
    port: int,
    rest_port: int | None,
    db: Path,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    workflows: tuple[str, ...],
) -> None:
    """Run the engine until SIGINT or SIGTERM."""
    if bool(tls_cert) != bool(tls_key) or (tls_client_ca and not tls_cert):
        raise click.UsageError("--tls-cert and --tls-key go together (and --tls-client-ca needs them)")
    tls = ServerTLS(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _engine_errors():
            engine = Engine(db, host=host, port=port, rest_port=rest_port, tls=tls, workflows=workflows).start()
        try:
            token_cmd = f"hatchet-manifest engine token --db {db} --port {engine.port} --rest-port {engine.rest_port}"
            if host != "127.0.0.1":
                token_cmd += f" --host {host}"
            if tls is not None:
                token_cmd += " --tls"
            click.echo(f"engine listening on {engine.address} (gRPC), REST at {engine.server_url}", err=True)
            click.echo(f"database {db} (tenant {engine.tenant_id})", err=True)
            click.echo(f"get a token: {token_cmd}", err=True)
            strategy = "tls" if tls is not None else "none"
            click.echo(f"clients: HATCHET_CLIENT_TOKEN=$({token_cmd}) HATCHET_CLIENT_TLS_STRATEGY={strategy}", err=True)
            click.echo("stop with Ctrl-C or SIGTERM", err=True)
            while not stop.wait(0.5):
                pass
        finally:
            engine.stop()
        click.echo("engine stopped", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@command.command("token")
@db_option
@host_option
@port_option
@rest_port_option
@click.option("--tls", is_flag=True, help="The engine serves TLS (the token's server_url is https).")
@click.option("--ttl-days", type=click.IntRange(min=1), default=365, show_default=True, help="Days until it expires.")
def token(db: Path, host: str, port: int, rest_port: int | None, tls: bool, ttl_days: int) -> None:
    """Print a token for the engine using --db on --port (the engine need not be running). Only the token is printed."""
    with _engine_errors():
        value = issue_token(db, host=host, port=port, rest_port=rest_port, tls=tls, ttl=timedelta(days=ttl_days))
    click.echo(value)


@command.command("runs")
@db_option
@click.option("-o", "--output", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True)
@click.option("--workflow", help="Only runs of this workflow (full name, namespace included).")
@click.option(
    "--metadata",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only runs with this metadata (repeatable: all must match).",
)
def runs(db: Path, output: str, workflow: str | None, metadata: tuple[str, ...]) -> None:
    """The runs the engine received: run_id, workflow_name, input, additional_metadata, priority, received_at."""
    pairs: dict[str, str] = {}
    for item in metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--metadata")
        pairs[key] = value
    with (
        _engine_errors(),
        RunStore(db) as store,
        contextlib.closing(_generator(store.list_runs(workflow, pairs))) as listed,
    ):
        # closed before the store: a reader that goes away (`| head`) ends the listing while its database is open
        write_records((run.to_dict() for run in listed), output, sys.stdout, RUN_COLUMNS)


def _generator(runs: Iterator[StoredRun]) -> Generator[StoredRun, None, None]:
    """`runs` as a generator (which `contextlib.closing` can close)."""
    yield from runs
