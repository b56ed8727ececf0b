"""What `--ledger` refuses, and the files a SQLite ledger cannot use: each a clear error, nothing created by mistake.

Read-only files and directories are tested in a subprocess without the capabilities that let root write anyway
(setpriv), or as the user the tests run as.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchet_manifest.errors import ConfigError, LedgerError
from hatchet_manifest.ledger import PendingRow, Target, open_ledger
from hatchet_manifest.ledger.url import parse_location
from hatchet_manifest.ledger.values import NoLedgerError
from tests.conftest import RunCli

T = Target("t", "a:1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("host=db dbname=ledger", "the ledger host=db dbname=ledger looks like a libpq connection string"),
        ("dbname=ledger", "the ledger dbname=ledger looks like a libpq connection string"),
        (" user = me", "the ledger  user = me looks like a libpq connection string"),
        ("my ledger=1.db", "the ledger my ledger=1.db looks like a libpq connection string"),
        (":memory:", "the ledger :memory: is an in-memory database: nothing would be recorded"),
        ("sqlite:///:memory:", "the ledger sqlite:///:memory: is an in-memory database"),
        ("sqlite::memory:", "the ledger sqlite::memory: is an in-memory database"),
        ("sqlite:///x.db?mode=memory", "bad SQLite ledger URL sqlite:///x.db?mode=memory: query strings and fragments"),
        ("sqlite:///", "bad SQLite ledger URL sqlite:///: no path"),
        ("sqlite://", "bad SQLite ledger URL sqlite://: no path"),
        ("sqlite://[oops/x.db", "bad SQLite ledger URL sqlite://[oops/x.db: a SQLite ledger is a local file"),
        ("sqlite:///dir/", "the ledger sqlite:///dir/ names a directory: give the path of a file, e.g. sqlite:///dir/"),
        ("state/", "the ledger state/ names a directory"),
        ("..", "the ledger .. names a directory"),
        ("postgresql:db", "bad PostgreSQL ledger URL postgresql:db: write postgresql://[user@]host[:port]/dbname"),
        ("postgresql+psycopg://h/db", "unsupported ledger URL postgresql+psycopg://h/db"),
        ("file:///x.db", "unsupported ledger URL file:///x.db"),
        ("   ", "the ledger URL is empty"),
        ("a\nb.db", "the ledger URL a\\nb.db contains the "),
        ("a\u202eb.db", "the ledger URL a\\u202eb.db contains the "),
    ],
)
def test_what_is_neither_a_path_nor_a_url_we_know_is_refused(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_ledger(url, tmp_path / "state")
    assert str(caught.value).startswith(message), str(caught.value)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("./dbname=ledger", "dbname=ledger"),  # path syntax forces a path
        ("/srv/a b=c.db", "/srv/a b=c.db"),
        ("state:v2/ledger.db", "state:v2/ledger.db"),
        ("ledger=v2.db", "ledger=v2.db"),  # not a libpq keyword, no blank
        ("sqlite:///srv/a%3Fb.db", "/srv/a?b.db"),
    ],
)
def test_odd_but_plausible_paths_are_paths(url: str, path: str) -> None:
    assert parse_location(url, Path("s")).path == Path(path)


def test_an_explicit_path_needs_its_directory_the_default_gets_it(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("ledger", "import", "--ledger", f"sqlite://{tmp_path}/no/dir/x.db", os.devnull)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot create the ledger {tmp_path}/no/dir/x.db: the directory {tmp_path}/no/dir does not exist: "
        "create it first (only the state dir is made when missing)\n"
    )
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(LedgerError, match=f"^cannot create the ledger {tmp_path}/file/x.db: {tmp_path}/file is not"):
        open_ledger(tmp_path / "file" / "x.db", tmp_path)
    with open_ledger(None, tmp_path / "deep" / "state"):  # the state dir, parents and all
        pass
    assert (tmp_path / "deep" / "state" / "ledger.db").is_file()


def test_special_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(LedgerError, match=f"^the ledger {tmp_path}/dir is a directory, not a SQLite file"):
        open_ledger(tmp_path / "dir", tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(LedgerError, match=r"^the ledger .*/fifo is a FIFO \(named pipe\), not a regular file"):
        open_ledger(str(tmp_path / "fifo"), tmp_path)
    with pytest.raises(LedgerError, match=r"^the ledger /dev/null is a character device, not a regular file"):
        open_ledger("/dev/null", tmp_path)
    (tmp_path / "text").write_text("hello\n")
    with pytest.raises(LedgerError, match=f"^the ledger {tmp_path}/text is not a SQLite database"):
        open_ledger(tmp_path / "text", tmp_path)
    assert (tmp_path / "text").read_text() == "hello\n" and sorted(os.listdir(tmp_path)) == ["dir", "fifo", "text"]


def test_another_programs_database_is_not_turned_into_a_ledger(tmp_path: Path, run_cli: RunCli) -> None:
    from hatchet_client.engine.schema import init_database

    engine_db = tmp_path / "engine.db"
    init_database(engine_db)
    conn = sqlite3.connect(engine_db)
    conn.execute("PRAGMA journal_mode = DELETE")
    before = conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    conn.close()
    result = run_cli("ledger", "import", "--ledger", str(engine_db), os.devnull)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: the SQLite database {engine_db} is not a hatchet-manifest ledger: it holds other tables (commits, "
    )
    conn = sqlite3.connect(engine_db)
    assert conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall() == before
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # not switched to WAL either
    conn.close()
    with pytest.raises(LedgerError, match="is not a hatchet-manifest ledger"):
        open_ledger(engine_db, tmp_path, readonly=True)


def test_an_empty_file_becomes_a_ledger_but_is_none_to_a_reader(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(NoLedgerError, match=r"^no ledger at .*/empty.db \(an empty SQLite database\)$"):
        open_ledger(tmp_path / "empty.db", tmp_path, readonly=True)
    with open_ledger(tmp_path / "empty.db", tmp_path, create=False) as ledger:
        ledger.record_pending(T, [PendingRow("k", "d", "m", "m.yaml")])
    with open_ledger(tmp_path / "empty.db", tmp_path, readonly=True) as ledger:
        assert ledger.count(T) == 1
        with pytest.raises(LedgerError, match="is read-only"):  # a reader never writes
            ledger.record_pending(T, [PendingRow("k2", "d", "m", "m.yaml")])


def test_a_damaged_ledger_says_so(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with open_ledger(path, tmp_path) as ledger:
        ledger.record_pending(T, [PendingRow(f"k{i}", "d" * 100, "m", "m.yaml") for i in range(2000)])
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 6] = b"\xa5" * 4096 * 4  # pages of the tables, not the header
    path.write_bytes(bytes(data))
    for name in ("ledger.db-wal", "ledger.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    damaged = r"^the ledger .*/ledger.db is damaged \(.*\): restore it from a backup"
    with pytest.raises(LedgerError, match=damaged), open_ledger(path, tmp_path) as ledger:
        list(ledger.export_rows())


def run_unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess that file permissions apply to (root keeps its uid, loses DAC override)."""
    command = [sys.executable, "-m", "hatchet_manifest", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions cannot be tested")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, "--bounding-set", caps, "--inh-caps", caps, *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_MANIFEST_", "HATCHET_CLIENT_"))}
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False)


ROW = (
    '{"tenant_id":"t","address":"a:1","key":"k","digest":"d","run_id":"r","manifest":"m","file":"m.yaml",'
    '"state":"submitted","error":null,"created_at":"2024-05-01T12:00:00+00:00","updated_at":"2024-05-01T12:00:00+00:00"}'
)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A ledger in a read-only directory, and a read-only ledger in a writable one (permissions restored after)."""
    (tmp_path / "rows.jsonl").write_text(ROW + "\n")
    for name in ("rodir", "rofile"):
        (tmp_path / name).mkdir()
        with open_ledger(tmp_path / name / "l.db", tmp_path) as ledger:
            ledger.import_rows([json.loads(ROW)])
    (tmp_path / "rofile" / "l.db").chmod(0o444)
    (tmp_path / "rodir").chmod(0o555)
    yield tmp_path / "rodir" / "l.db", tmp_path / "rofile" / "l.db"
    (tmp_path / "rodir").chmod(0o755)
    (tmp_path / "rofile" / "l.db").chmod(0o644)


def test_read_only_ledgers_can_be_read_and_say_why_they_cannot_be_written(
    tmp_path: Path, read_only: tuple[Path, Path]
) -> None:
    in_dir, file = read_only
    for ledger in (in_dir, file):
        exported = run_unprivileged("ledger", "export", "--ledger", str(ledger), cwd=tmp_path)
        assert (exported.returncode, exported.stdout.count('"key":"k"')) == (0, 1), exported.stderr
    imported = run_unprivileged("ledger", "import", "--ledger", str(in_dir), "rows.jsonl", cwd=tmp_path)
    assert imported.returncode == 1
    assert imported.stderr == (
        f"error: the ledger {in_dir} is read-only: its directory {in_dir.parent} cannot be written, and SQLite keeps "
        "l.db-wal and l.db-shm beside the file\n"
    )
    imported = run_unprivileged("ledger", "import", "--ledger", str(file), "rows.jsonl", cwd=tmp_path)
    assert imported.returncode == 1
    assert imported.stderr == (
        f"error: the ledger {file} is read-only (the file, or its -wal or -shm file, cannot be written)\n"
    )
    new = run_unprivileged("ledger", "import", "--ledger", str(in_dir.parent / "new.db"), "rows.jsonl", cwd=tmp_path)
    assert new.returncode == 1
    assert (
        new.stderr
        == f"error: cannot create the ledger {in_dir.parent}/new.db: the directory {in_dir.parent} is read-only\n"
    )
    out = run_unprivileged(
        "ledger", "export", "--ledger", str(file), "-o", str(in_dir.parent / "x.jsonl"), cwd=tmp_path
    )
    assert out.returncode == 1
    assert out.stderr == f"error: cannot write {in_dir.parent}/x.jsonl: permission denied; nothing written\n"
    assert sorted(os.listdir(in_dir.parent)) == ["l.db"]
    for result in (imported, new, out):
        assert "readonly database" not in result.stderr and "Errno" not in result.stderr
