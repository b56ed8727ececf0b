"""`ledger import|export|forget` given bad input, through the real CLI: each a located error with exit code 1, and
nothing created or left behind (no state dir, no ledger, no engine, no partial export)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import AdoptedRow, PendingRow, Target, migrations, open_ledger
from hatchet_manifest.ledger.base import ERROR_LIMIT
from hatchet_manifest.ledger.rows import MAX_LINE_BYTES, RowError, parse_lines, read_lines
from hatchet_manifest.ledger.sql import SqlLedger
from tests.conftest import RunCli
from tests.ledger.test_ledger_schema import raw

T = Target("t", "a:1")


def line(**changes: Any) -> str:
    row: dict[str, Any] = {
        "tenant_id": "t",
        "address": "a:1",
        "key": "k",
        "digest": "d",
        "run_id": "r",
        "manifest": "m",
        "file": "m.yaml",
        "state": "submitted",
        "error": None,
        "created_at": "2024-05-01T12:00:00+00:00",
        "updated_at": "2024-05-01T12:00:00+00:00",
    }
    row.update(changes)
    return json.dumps(row)


def has_ledger(url: str) -> bool:
    if url.startswith("postgresql://"):
        return raw(url, "SELECT to_regclass('ledger_schema_version') IS NOT NULL") == [(True,)]
    return Path(url).exists()


# -- import --------------------------------------------------------------------------------------------------------

BAD_CONTENT = [
    (b"[" * 100_000 + b"\n", "1: not valid JSON for a row: nested too deeply"),
    (b'{"a":' * 100_000 + b"\n", "1: not valid JSON for a row: nested too deeply"),
    (line().encode() + b"\n" + b'"' + b"x" * MAX_LINE_BYTES + b'"\n', f"2: the line is longer than {MAX_LINE_BYTES}"),
    (line().encode() + b"\n" + b"x" * (MAX_LINE_BYTES + 1), f"2: the line is longer than {MAX_LINE_BYTES} bytes"),
    (
        line(key="a").encode() + b"\n" + line(key="b").encode() + b'\n{"tenant_id": "\xe9"}\n',
        "3: not UTF-8: invalid byte 0xe9 at byte 16 of the line",
    ),
    (b"\xff\xfe{}\n", "1: not UTF-8: invalid byte 0xff at byte 1 of the line"),
    (line().replace('"m.yaml"', "1" * 10_000).encode() + b"\n", f"1: file: expected a string, got {'1' * 77}..."),
    (line().replace('"k"', "NaN").encode() + b"\n", "1: not valid JSON: NaN is not JSON"),
    (line().replace('"key": "k"', '"key": "k", "key": "k2"').encode() + b"\n", '1: not valid JSON: the field "key" '),
    (b"\n", "1: not valid JSON: Expecting value"),
    (line().encode() + b"\n\n", "2: not valid JSON: Expecting value"),
]


@pytest.mark.parametrize(("content", "message"), BAD_CONTENT)
def test_bad_import_files_are_located_errors_and_create_nothing(
    tmp_path: Path, run_cli: RunCli, ledger_url: str, content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    result = run_cli("ledger", "import", str(bad), "--ledger", ledger_url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {bad}:{message}"), result.stderr[:300]
    assert result.stderr.endswith("; nothing imported\n") and len(result.stderr) < 400
    assert not has_ledger(ledger_url)  # a new ledger is made only from a good file


def test_a_bad_stdin_into_a_new_default_ledger_creates_no_state_dir(tmp_path: Path, run_cli: RunCli) -> None:
    state = tmp_path / "state"
    result = run_cli("ledger", "import", "-", "--state-dir", str(state), input=line() + "\n" + line(key="") + "\n")
    assert result.exit_code == 1
    assert result.stderr == 'error: <stdin>:2: key: expected a non-empty string, got ""; nothing imported\n'
    assert not state.exists()
    result = run_cli("ledger", "import", "-", "--state-dir", str(state), input="\ufeff" + line() + "\n")  # a BOM
    assert (result.exit_code, result.stderr) == (0, f"imported 1 row(s) into {state}/ledger.db\n")


def test_a_bad_file_into_an_existing_ledger_imports_nothing(tmp_path: Path, run_cli: RunCli, ledger_url: str) -> None:
    with open_ledger(ledger_url, tmp_path) as ledger:
        ledger.record_pending(T, [PendingRow("p", "d", "m", "m.yaml")])
    rows = "".join(line(key=f"k{i:05d}") + "\n" for i in range(2500)) + "[[[]]]\n"
    (tmp_path / "bad.jsonl").write_text(rows)
    result = run_cli("ledger", "import", str(tmp_path / "bad.jsonl"), "--ledger", ledger_url)
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path}/bad.jsonl:2501: expected a JSON object, got [[[]]]; nothing imported\n"
    with open_ledger(ledger_url, tmp_path) as ledger:
        assert [e.key for e in ledger.entries(T)] == ["p"]


class Endless(io.RawIOBase):
    """A stream of good rows that never ends, and counts what was read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0
        self.data = (line() + "\n").encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self.data))
        buffer[:n] = self.data[:n]
        self.read_bytes += n
        return n


def test_import_input_is_streamed_one_line_at_a_time() -> None:
    source = Endless()
    rows = parse_lines(read_lines(io.BufferedReader(source, buffer_size=4096)))
    for _ in range(3):
        assert next(rows)["key"] == "k"
    assert source.read_bytes <= 8192  # not read whole (it has no end)


def test_read_lines_caps_a_line_without_reading_past_the_cap() -> None:
    class Zeros(io.RawIOBase):
        read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            buffer[: len(buffer)] = b"0" * len(buffer)
            self.read_bytes += len(buffer)
            return len(buffer)

    source = Zeros()
    with pytest.raises(RowError, match=r"^row 1: the line is longer than"):
        next(read_lines(io.BufferedReader(source)))
    assert source.read_bytes < MAX_LINE_BYTES * 2


def test_error_texts_are_capped_so_that_every_export_can_be_imported(tmp_path: Path, ledger_url: str) -> None:
    with open_ledger(ledger_url, tmp_path) as ledger:
        ledger.record_pending(T, [PendingRow("k", "d", "m", "m.yaml")])
        ledger.record_failed(T, ["k"], "E" * (MAX_LINE_BYTES * 2))
        [row] = list(ledger.export_rows())
    assert len(row["error"]) == ERROR_LIMIT and row["error"].endswith("...")


# -- export --------------------------------------------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with open_ledger(path, tmp_path) as ledger:
        ledger.record_pending(T, [PendingRow(f"k{i}", "d", "m", "m.yaml") for i in range(3000)])
    return path


def test_export_to_a_missing_directory_is_an_error(filled: Path, run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("ledger", "export", "--ledger", str(filled), "-o", str(tmp_path / "no" / "dir" / "x.jsonl"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot write {tmp_path}/no/dir/x.jsonl: the directory {tmp_path}/no/dir does not exist\n"
    )
    assert not (tmp_path / "no").exists()


def test_a_failed_export_leaves_no_partial_file(
    filled: Path, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("the previous export\n")
    out.chmod(0o640)
    real = SqlLedger.export_rows

    def failing(self: SqlLedger[Any]) -> Iterator[dict[str, Any]]:
        for n, row in enumerate(real(self)):
            if n == 2500:
                raise LedgerError("ledger x: the server closed the connection")
            yield row

    monkeypatch.setattr(SqlLedger, "export_rows", failing)
    result = run_cli("ledger", "export", "--ledger", str(filled), "-o", str(out))
    assert (result.exit_code, result.stderr) == (1, "error: ledger x: the server closed the connection\n")
    assert out.read_text() == "the previous export\n"
    assert sorted(os.listdir(tmp_path)) == ["ledger.db", "ledger.db-shm", "ledger.db-wal", "out.jsonl"]
    monkeypatch.undo()
    result = run_cli("ledger", "export", "--ledger", str(filled), "-o", str(out))
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 3000
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # the file replaced keeps its permissions


def test_export_refuses_to_overwrite_the_ledger_and_writes_devices_in_place(
    filled: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    for target in (filled, Path(f"{filled}-wal")):
        result = run_cli("ledger", "export", "--ledger", str(filled), "-o", str(target))
        assert (result.exit_code, result.stderr) == (
            1,
            f"error: cannot export to {target}: it is the ledger's own file\n",
        )
    result = run_cli("ledger", "export", "--ledger", str(filled), "-o", os.devnull)
    assert result.exit_code == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # written to, not replaced by a file
    with open_ledger(filled, tmp_path, readonly=True) as ledger:
        assert ledger.count(T) == 3000


def test_export_opens_the_ledger_read_only_and_creates_none(pg_url: str, run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("ledger", "export", "--ledger", pg_url)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: no ledger in {pg_url}: the database holds no ledger tables (nothing was recorded there yet)\n"
    )
    assert not has_ledger(pg_url)
    with open_ledger(pg_url, tmp_path) as ledger:
        ledger.record_pending(T, [PendingRow("k", "d", "m", "m.yaml")])
    with open_ledger(pg_url, tmp_path, readonly=True) as ledger:
        assert ledger.count(T) == 1
        with pytest.raises(LedgerError, match="read-only transaction"):
            ledger.record_pending(T, [PendingRow("k2", "d", "m", "m.yaml")])


def test_a_reader_refuses_a_newer_schema_without_touching_it(ledger_url: str, tmp_path: Path, run_cli: RunCli) -> None:
    with open_ledger(ledger_url, tmp_path) as ledger:
        location = ledger.location
    raw(ledger_url, "INSERT INTO ledger_schema_version (version, applied_at) VALUES (7, CURRENT_TIMESTAMP)")
    result = run_cli("ledger", "export", "--ledger", ledger_url)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the ledger {location} has schema version 7, newer than this hatchet-manifest knows "
        f"(up to {migrations.LATEST}): "
        "upgrade hatchet-manifest to use it\n"
    )


# -- forget --------------------------------------------------------------------------------------------------------


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Target]:
    """A state dir with an engine database (never started) and a ledger with rows for its target."""
    from hatchet_client.engine.schema import init_database

    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.delenv("CI", raising=False)
    state = tmp_path / "state"
    state.mkdir()
    target = Target(init_database(state / "engine.db"), "embedded")
    with open_ledger(None, state) as ledger:
        ledger.adopt(target, [AdoptedRow(f"k{i}", "d", "m", "m.yaml", f"run-{i}") for i in range(3)])
        ledger.adopt(target, [AdoptedRow("other", "d", "m2", "m2.yaml", "run-o")])
    return state, target


def test_forget_resolves_the_embedded_target_without_starting_an_engine(
    embedded: tuple[Path, Target], run_cli: RunCli
) -> None:
    state, target = embedded
    result = run_cli("ledger", "forget", "k1", "--yes", "--state-dir", str(state))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"target: the embedded engine ({state}/engine.db) (--engine auto: HATCHET_CLIENT_TOKEN is not set)",
        f"forgot 1 row(s) of {target.id} in {state}/ledger.db",
    ]
    assert not (state / "engine.db.secret").exists()  # no Engine was made, let alone started


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_forget_of_what_the_ledger_does_not_hold_is_an_error(
    embedded: tuple[Path, Target], run_cli: RunCli, dry_run: list[str]
) -> None:
    state, target = embedded
    args = ["--yes", "--state-dir", str(state), *dry_run]
    result = run_cli("ledger", "forget", "--manifest", "nope", *args)
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"error: 1 manifest(s) have no rows in the ledger of {target.id}: nope; nothing forgotten\n"
    )
    result = run_cli("ledger", "forget", "--manifest", "m", "--manifest", "gone", "--manifest", "m2", *args)
    assert result.exit_code == 1 and "1 manifest(s) have no rows in the ledger of" in result.stderr
    keys = [f"x{i}" for i in range(12)]
    result = run_cli("ledger", "forget", "k0", *keys, "a\x1b[2Kb", *args)
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"error: 13 key(s) not in the ledger of {target.id}: {', '.join(keys[:10])} and 3 more; nothing forgotten\n"
    )
    result = run_cli("ledger", "forget", "a\x1b[2Kb", *args)
    assert result.stderr.endswith(f"error: 1 key(s) not in the ledger of {target.id}: a\\x1b[2Kb; nothing forgotten\n")
    with open_ledger(None, state) as ledger:
        assert ledger.count(target) == 4


def test_a_failed_forget_creates_nothing(tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.delenv("CI", raising=False)
    state = tmp_path / "state"
    result = run_cli("ledger", "forget", "k", "--yes", "--state-dir", str(state))
    assert (result.exit_code, result.stderr) == (1, f"error: no ledger at {state}/ledger.db\n")
    assert not state.exists()
    # a ledger but no engine: the embedded target cannot be told, and no engine is made to tell it
    result = run_cli("ledger", "import", "-", "--state-dir", str(state), input=line() + "\n")
    assert result.exit_code == 0
    for dry_run in ([], ["--dry-run"]):
        result = run_cli("ledger", "forget", "k", "--yes", "--state-dir", str(state), *dry_run)
        assert result.exit_code == 1
        assert result.stderr == (
            f"error: no embedded engine at {state}/engine.db: nothing was applied to the embedded target from this "
            "state dir (for a remote Hatchet, set HATCHET_CLIENT_TOKEN or pass --engine remote)\n"
        )
    assert sorted(os.listdir(state)) == ["ledger.db", "ledger.db-shm", "ledger.db-wal"]
    (state / "engine.db").write_text("not an engine")
    result = run_cli("ledger", "forget", "k", "--yes", "--state-dir", str(state))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot read the tenant of the embedded engine from {state}/engine.db: ")


def test_forget_on_a_remote_target_reads_its_settings_only(tmp_path: Path, run_cli: RunCli) -> None:
    from hatchet_client.engine.engine import issue_token

    token = issue_token(tmp_path / "remote" / "engine.db", port=7077)
    open_ledger(None, tmp_path / "state").close()  # an empty ledger
    env = {"HATCHET_CLIENT_TOKEN": token, "HATCHET_CLIENT_TLS_STRATEGY": "none"}
    result = run_cli("ledger", "forget", "k", "--yes", "--state-dir", str(tmp_path / "state"), env=env)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("target: Hatchet at 127.0.0.1:7077 (tenant ")
    assert lines[1].startswith("error: 1 key(s) not in the ledger of ") and lines[1].endswith(
        "@127.0.0.1:7077: k; nothing forgotten"
    )
    assert not (tmp_path / "state" / "engine.db").exists()


def test_a_dry_run_forget_needs_no_lock_and_writes_nothing(embedded: tuple[Path, Target], run_cli: RunCli) -> None:
    state, _ = embedded
    result = run_cli("ledger", "forget", "k0", "--dry-run", "--state-dir", str(state))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "would forget k0 (submitted, manifest m)\n"
    assert not (state / "ledger.db-locks").exists()


def test_a_piped_import_into_a_new_ledger_stops_at_the_first_bad_line(tmp_path: Path) -> None:
    """stdin that is a pipe is copied aside while it is checked, never read ahead: endless bad input ends at once."""
    yes = subprocess.Popen(["yes", line()], stdout=subprocess.PIPE)  # good rows (the same key again: line 2 is bad)
    try:
        assert yes.stdout is not None
        done = subprocess.run(
            [sys.executable, "-m", "hatchet_manifest", "ledger", "import", "-", "--state-dir", str(tmp_path / "s")],
            stdin=yes.stdout,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        yes.kill()
        yes.wait()
        assert yes.stdout is not None
        yes.stdout.close()
    assert done.returncode == 1
    assert done.stderr == "error: <stdin>:2: the same target and key as row 1; nothing imported\n"
    assert not (tmp_path / "s").exists()
    piped = subprocess.run(
        [sys.executable, "-m", "hatchet_manifest", "ledger", "import", "-", "--state-dir", str(tmp_path / "s")],
        input="".join(line(key=f"k{i}") + "\n" for i in range(2000)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (piped.returncode, piped.stderr) == (0, f"imported 2000 row(s) into {tmp_path}/s/ledger.db\n")
