"""Shared fixtures: the real CLI through click's runner."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from hatchet_manifest.cli import cli
from tests.pgserver import PgServer, find_pg_bindir, require_psycopg, unavailable
from tests.pki import TLSFiles, make_tls_files

# Started in the background by a shell without job control, pytest inherits SIGINT ignored, and so would every
# process it starts: the Ctrl-C tests need it delivered. (A handler, unlike "ignored", is not inherited by exec.)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent

# An apply's first pass shows its progress once it has taken a second, which a loaded machine reaches at random:
# tests that pin stderr would see it or not. It shows only in the test that is about it (which sets 0).
os.environ.setdefault("HATCHET_MANIFEST_PROGRESS_AFTER", "3600")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """Run `hatchet-manifest ARGS...` in-process; returns exit code, stdout and stderr separately."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None, cwd: Path | None = None
    ) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        result = CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    require_psycopg()
    bindir = find_pg_bindir()
    if bindir is None:
        unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install Debian's postgresql package "
            "(apt-get install -y postgresql) or set PG_BINDIR"
        )
        raise AssertionError("unreachable")
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A test CA, server (127.0.0.1/localhost) and client certificates, and an unrelated CA."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
