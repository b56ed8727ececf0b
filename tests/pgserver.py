"""A throwaway PostgreSQL server for the tests, from the machine's binaries (Debian's `postgresql` package).

initdb into a temporary directory, a free 127.0.0.1 port, sockets in that directory; as root (CI, sandboxes) the
server runs as the `postgres` user, or `nobody`, since PostgreSQL refuses to run as root. Without binaries or
psycopg the PostgreSQL tests are skipped, unless HATCHET_MANIFEST_REQUIRE_POSTGRES=1 makes that a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.net import free_port

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


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
            self.port = free_port()
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


def unavailable(reason: str) -> None:
    if os.environ.get("HATCHET_MANIFEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (HATCHET_MANIFEST_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


def require_psycopg() -> None:
    """Skip (or fail, when PostgreSQL is required) a test that needs psycopg where it is not installed."""
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        unavailable("psycopg 3 is not installed: pip install 'psycopg[binary]>=3.2'")
