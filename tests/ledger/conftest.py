"""Ledger fixtures: every ledger test runs on SQLite and on a real PostgreSQL server started here.

The server comes from the machine's PostgreSQL binaries (Debian's `postgresql` package), in a temporary directory,
on a free 127.0.0.1 port, once per test session; each test gets a fresh database. As root (CI, sandboxes) the
server runs as the `postgres` user, or `nobody`, since PostgreSQL refuses to run as root. Without binaries the
PostgreSQL tests are skipped, unless HATCHET_MANIFEST_REQUIRE_POSTGRES=1 makes that a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hatchet_manifest.ledger import Ledger, open_ledger

HERE = Path(__file__).resolve().parent
WORKER = HERE / "ledger_worker.py"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    now: datetime = field(default_factory=lambda: datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def find_pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: $PG_BINDIR, pg_config, PATH, /usr/lib/postgresql/*."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in SERVER_BINARIES):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """A throwaway PostgreSQL cluster: initdb into a temporary directory, pg_ctl start, pg_ctl stop."""

    user = "ledger"

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # Under /tmp: the server's user must reach it (as root it is not us), and a unix socket path must stay short.
        self.dir = Path(tempfile.mkdtemp(prefix="hm-ledger-pg-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.run_as: str | None = None
        if os.geteuid() == 0:
            self.run_as = next(u for u in ("postgres", "nobody") if _user_exists(u))
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.port = 0
        self._databases = itertools.count(1)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.dir)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-locale", "-N")
        for attempt in range(3):  # the free port may be taken between our probe and the server's bind
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=50"
            )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "30", "start")
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"ledger_test_{next(self._databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[call-overload]
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[call-overload]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _unavailable(reason: str) -> None:
    if os.environ.get("HATCHET_MANIFEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (HATCHET_MANIFEST_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


def require_psycopg() -> None:
    """Skip (or fail, when PostgreSQL is required) a test that needs psycopg where it is not installed."""
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        _unavailable("psycopg 3 is not installed: pip install 'psycopg[binary]>=3.2'")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    require_psycopg()
    bindir = find_pg_bindir()
    if bindir is None:
        _unavailable(
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


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the test's ledger lives: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        return str(tmp_path / "state" / "ledger.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def another_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second, empty ledger on the same backend."""
    if backend == "sqlite":
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
