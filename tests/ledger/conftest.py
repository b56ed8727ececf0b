"""Ledger fixtures: every ledger test runs on SQLite and on a real PostgreSQL server (tests/pgserver.py, the
session's `pg_server` fixture in tests/conftest.py); each test gets a fresh database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hatchet_manifest.ledger import Ledger, open_ledger
from tests.pgserver import PgServer

HERE = Path(__file__).resolve().parent
WORKER = HERE / "ledger_worker.py"


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    now: datetime = field(default_factory=lambda: datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the test's ledger lives: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        (tmp_path / "state").mkdir(exist_ok=True)  # an explicit ledger path's directory must exist
        return str(tmp_path / "state" / "ledger.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def another_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second, empty ledger on the same backend."""
    if backend == "sqlite":
        (tmp_path / "another").mkdir(exist_ok=True)
        yield str(tmp_path / "another" / "ledger.db")
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


OpenLedger = Callable[..., Ledger]


@pytest.fixture
def open_store(ledger_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[OpenLedger]:
    """Open (another handle on) the test's ledger; every handle is closed at the end of the test."""
    opened: list[Ledger] = []

    def open_(url: str | None = None, **kwargs: object) -> Ledger:
        kwargs.setdefault("clock", clock)
        ledger = open_ledger(url or ledger_url, tmp_path / "state", **kwargs)  # type: ignore[arg-type]
        opened.append(ledger)
        return ledger

    yield open_
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_store: OpenLedger) -> Ledger:
    return open_store()


def spawn_worker(*args: str) -> subprocess.Popen[str]:
    """Start tests/ledger/ledger_worker.py in its own process (stdin and stdout are pipes)."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_worker(proc: subprocess.Popen[str]) -> None:
    """Kill a worker if it still runs, reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            pipe.close()


def run_together(workers: list[subprocess.Popen[str]], timeout: float) -> list[tuple[str, str]]:
    """Wait until every worker says "ready", tell them all "go" at once, and collect (stdout, stderr); the workers
    are stopped whatever happens."""
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        return [worker.communicate(timeout=timeout) for worker in workers]
    finally:
        for worker in workers:
            stop_worker(worker)
